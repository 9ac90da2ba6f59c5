"""Make diffusers' generic loaders understand this package.

diffusers resolves the components named in `model_index.json` only from a fixed table of libraries (`diffusers`,
`transformers`, ...): a component from any other package fails to download from the Hub ("... is not a module in
'diffusers/pipelines'"). Registering `rfr_pipeline` in that table lets `save_pretrained` record our model as
`["rfr_pipeline", "RFRNet"]` and lets `from_pretrained` resolve it, from a local folder and from a Hub repo id alike.
Exposing the pipeline class on the `diffusers` module lets `DiffusionPipeline.from_pretrained` find it by the
`_class_name` in `model_index.json`. Both take effect when `rfr_pipeline` is imported.
"""

import diffusers
from diffusers.pipelines import pipeline_loading_utils

LIBRARY_NAME = "rfr_pipeline"


def register(pipeline_class) -> None:
    methods = ["save_pretrained", "from_pretrained"]
    pipeline_loading_utils.LOADABLE_CLASSES.setdefault(LIBRARY_NAME, {"ModelMixin": methods})
    pipeline_loading_utils.ALL_IMPORTABLE_CLASSES.setdefault("ModelMixin", methods)
    if not hasattr(diffusers, pipeline_class.__name__):
        setattr(diffusers, pipeline_class.__name__, pipeline_class)
