#!/usr/bin/env python
"""Upload a pipeline folder (from conversion or training) to the Hugging Face Hub.

    huggingface-cli login          # or set HF_TOKEN
    python scripts/push_to_hub.py --folder rfr-celeba --repo-id your-name/rfr-celeba [--private]

The folder must be a complete RFRInpaintPipeline folder (model_index.json, rfrnet/ with safetensors weights); its
README.md is the model card shown on the Hub.
"""

import argparse
import json
import sys
from pathlib import Path


def check_pipeline_folder(folder: Path) -> None:
    index = folder / "model_index.json"
    if not index.is_file():
        raise ValueError(f"{folder} has no model_index.json: not a pipeline folder (save one with save_pretrained)")
    config = json.loads(index.read_text())
    if config.get("_class_name") != "RFRInpaintPipeline":
        raise ValueError(f"{index} describes a {config.get('_class_name')!r}, not an RFRInpaintPipeline")
    if not list((folder / "rfrnet").glob("*.safetensors")):
        raise ValueError(f"{folder / 'rfrnet'} holds no safetensors weights")
    if not (folder / "README.md").is_file():
        print(f"warning: {folder} has no README.md model card", file=sys.stderr)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", required=True, type=Path)
    parser.add_argument("--repo-id", required=True)
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--commit-message", default="Upload RFR-Net pipeline")
    args = parser.parse_args(argv)
    try:
        check_pipeline_folder(args.folder)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(args.repo_id, private=args.private, exist_ok=True)
    info = api.upload_folder(folder_path=args.folder, repo_id=args.repo_id, commit_message=args.commit_message)
    print(f"uploaded to {info}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
