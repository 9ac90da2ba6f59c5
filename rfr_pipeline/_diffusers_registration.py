"""Make diffusers' generic loaders understand this package.

diffusers resolves the components named in `model_index.json` only from a fixed table of libraries (`diffusers`,
`transformers`, ...): a component from any other package fails to download from the Hub ("... is not a module in
'diffusers/pipelines'"). Registering `rfr_pipeline` in that table lets `save_pretrained` record our model as
`["rfr_pipeline", "RFRNet"]` and lets `from_pretrained` resolve it, from a local folder and from a Hub repo id alike.
Exposing the pipeline class on the `diffusers` module lets `DiffusionPipeline.from_pretrained` find it by the
`_class_name` in `model_index.json`. Saved folders also ship a copy of the package's code for environments without
it (`remote_code.py`); where the package is installed, the component `["rfr_pipeline", "RFRNet"]` resolves to the
package, never to that copy. All of it takes effect when the pipeline module is imported, and `import rfr_pipeline`
arranges that as soon as diffusers is loaded, without loading diffusers itself (it takes seconds).
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys

LIBRARY_NAME = "rfr_pipeline"
# The diffusers releases whose internals `register` was checked against (CI installs the newest); pyproject.toml
# declares the same range (a test compares them).
SUPPORTED_DIFFUSERS = ">=0.35,<0.43"


def register(pipeline_class) -> None:
    if pipeline_class.__module__.split(".")[0] != LIBRARY_NAME:
        return  # the copy a saved folder ships, imported by diffusers as remote code: it registers nothing
    import diffusers
    from diffusers.pipelines import pipeline_loading_utils

    tables = [getattr(pipeline_loading_utils, name, None) for name in ("LOADABLE_CLASSES", "ALL_IMPORTABLE_CLASSES")]
    if not all(isinstance(table, dict) for table in tables):
        raise ImportError(
            f"rfr_pipeline cannot register its pipeline with diffusers {diffusers.__version__}: "
            "diffusers.pipelines.pipeline_loading_utils no longer has the LOADABLE_CLASSES and ALL_IMPORTABLE_CLASSES "
            f"tables it extends. Install a supported diffusers: pip install 'diffusers{SUPPORTED_DIFFUSERS}'")
    methods = ["save_pretrained", "from_pretrained"]
    pipeline_loading_utils.LOADABLE_CLASSES.setdefault(LIBRARY_NAME, {"ModelMixin": methods})
    pipeline_loading_utils.ALL_IMPORTABLE_CLASSES.setdefault("ModelMixin", methods)
    if not hasattr(diffusers, pipeline_class.__name__):
        setattr(diffusers, pipeline_class.__name__, pipeline_class)
    resolve = pipeline_loading_utils.get_class_obj_and_candidates
    if not getattr(resolve, "_rfr_pipeline", False):
        pipeline_loading_utils.get_class_obj_and_candidates = _package_before_shipped_copy(resolve)


def _package_before_shipped_copy(resolve):
    """diffusers takes a component's class from `<component>/<library>.py` when the folder has that file (remote
    code, which then needs trust_remote_code=True) before it looks for an installed library of that name. Our saved
    folders ship `rfrnet/rfr_pipeline.py` for environments without the package; here the package is installed, so
    the component "rfr_pipeline" is taken from it, as it was before folders shipped code."""

    def resolve_component(library_name, class_name, *args, **kwargs):
        if library_name == LIBRARY_NAME:
            kwargs.pop("component_name", None)  # (no component folder: no shipped file to look for)
            if len(args) > 3:
                args = args[:3]
        return resolve(library_name, class_name, *args, **kwargs)

    resolve_component._rfr_pipeline = True
    return resolve_component


def _import_pipeline_module() -> None:
    """Import (and so register) the pipeline, unless one of our modules is itself still importing diffusers: the
    package's `__getattr__` registers once that import is complete."""
    loading = [name for name, module in list(sys.modules.items()) if name.startswith(f"{LIBRARY_NAME}.")
               and getattr(getattr(module, "__spec__", None), "_initializing", False)]
    if not loading:
        importlib.import_module(f"{LIBRARY_NAME}.pipeline_rfr_inpaint")  # registers itself


class _AfterDiffusersLoads(importlib.abc.MetaPathFinder):
    """Finds diffusers as Python would, and imports our pipeline module (which registers) right after it loads."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "diffusers":
            return None
        sys.meta_path.remove(self)  # once; and never in the way of the search below
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def load_then_register(module):
            load(module)
            _import_pipeline_module()

        spec.loader.exec_module = load_then_register
        return spec


def register_when_diffusers_loads() -> None:
    if "diffusers" in sys.modules:
        _import_pipeline_module()
    elif not any(isinstance(finder, _AfterDiffusersLoads) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterDiffusersLoads())
