"""The dataset card: README.md = YAML header (configs, features, splits) + rendered template.

The YAML is what makes the folder a script-free Hub dataset: ``configs`` name
``sigma2_{k}`` for each noise level (``columns:`` selecting the shared columns
plus that level's), ``all`` and ``latents``, all over the same shards; and
``dataset_info`` declares features and split sizes, which ``datasets`` checks
at load time. The prose comes from the ``card_template.md`` beside this module, shipped
inside the package so an installed wheel renders cards too.
"""

from __future__ import annotations

import json
from pathlib import Path
from string import Template
from typing import Any

import yaml

from synthoct_bench.atomic import write_text
from synthoct_bench.dataset.features import features_yaml
from synthoct_bench.dataset.layout import (
    BLIND_COLUMNS,
    BLIND_CONFIG,
    config_columns,
    config_name,
    references_path,
)
from synthoct_bench.dataset.manifest import manifest_fingerprint
from synthoct_bench.dataset.records import Manifest
from synthoct_bench.paper import CITATION_BIBTEX
from synthoct_bench.references import references_markdown

__all__ = [
    "DEFAULT_CONFIG_LEVEL",
    "TEMPLATE_PATH",
    "REPO_PLACEHOLDER",
    "config_names",
    "card_yaml",
    "card_data",
    "dataset_version",
    "render_card",
]

#: The config ``load_dataset(path)`` picks without a name: the middle level, as the
#: default of ``synthoct_bench.load``.
DEFAULT_CONFIG_LEVEL = 9
TEMPLATE_PATH = Path(__file__).resolve().parent / "card_template.md"
#: The repo id the local card's quick start shows; ``push`` renders the real one.
REPO_PLACEHOLDER = "ORG/synthoct-bench"

_LICENSES = {
    "phantom": (
        "cc-by-4.0",
        "CC BY 4.0. The images are procedural phantoms rendered by synthoct-bench "
        "(Apache-2.0); no third-party model or data went into them.",
    ),
    "diffusion": (
        "creativeml-openrail-m",
        "The images come from a Stable Diffusion 1.5 UNet fine-tuned as in the paper, so "
        "they carry the CreativeML OpenRAIL-M use restrictions; the tabular columns are "
        "CC BY 4.0.",
    ),
}
_IMAGE_LIMITS = {
    "phantom": (
        "The images are procedural phantoms: layered retina, foveal pit, speckle and "
        "pathology driven by about 16 latent dimensions. They look like OCT B-scans but "
        "are far simpler than real scans or the paper's diffusion images; models that do "
        "well here need not do well on real data."
    ),
    "diffusion": (
        "The images come from a latent-conditioned diffusion model trained on public OCT "
        "scans; they can carry that data's artefacts and biases, and are not real patients."
    ),
}


class _NoAliasDumper(yaml.SafeDumper):
    """Plain YAML without &anchors/*aliases (the shared data_files list is repeated)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def config_names(levels: list[int]) -> list[str]:
    return [config_name(k) for k in levels] + ["all", "latents"]


def default_config(levels: list[int]) -> str:
    return config_name(DEFAULT_CONFIG_LEVEL) if DEFAULT_CONFIG_LEVEL in levels else "all"


def dataset_version(manifest: Manifest) -> str:
    """The dataset's version: the synthoct-bench release that built it (CHANGELOG.md)."""
    from synthoct_bench import __version__

    return manifest.software.get("synthoct-bench", __version__)


def card_yaml(manifest: Manifest, license_id: str) -> dict[str, Any]:
    """The YAML header as a dict (configs, dataset_info, metadata tags)."""
    levels = list(manifest.noise_levels)
    blind = manifest.blind_split
    splits = [s for s in manifest.present_splits() if s != blind]
    data_files = [{"split": s, "path": f"data/{s}-*.parquet"} for s in splits]
    default = default_config(levels)
    configs, infos = [], []
    names = config_names(levels) + ([BLIND_CONFIG] if blind else [])
    for name in names:
        cols = list(config_columns(name, levels))
        if name == BLIND_CONFIG:  # the blind split alone: its public columns
            config_splits = [blind]
            files = [{"split": blind, "path": f"data/{blind}-*.parquet"}]
        else:
            config_splits, files = splits, data_files
        entry: dict[str, Any] = {"config_name": name}
        if name == default:
            entry["default"] = True
        entry["data_files"] = files
        if name != "all":
            entry["columns"] = cols
        configs.append(entry)
        split_info = []
        for s in config_splits:
            col_bytes = manifest.column_bytes.get(s, {})
            split_info.append(
                {
                    "name": s,
                    "num_bytes": int(sum(col_bytes.get(c, 0) for c in cols)),
                    "num_examples": manifest.splits[s].n,
                }
            )
        infos.append(
            {
                "config_name": name,
                "features": features_yaml(cols),
                "splits": split_info,
            }
        )
    return {
        "license": license_id,
        "pretty_name": "synthoct-bench: synthetic OCT images with NLME longitudinal data",
        "task_categories": ["image-feature-extraction", "tabular-regression"],
        "tags": ["synthetic", "oct", "ophthalmology", "nlme", "pharmacometrics", "benchmark"],
        "size_categories": [_size_category(manifest.n)],
        "configs": configs,
        "dataset_info": infos,
        "dataset_version": dataset_version(manifest),
        "format_version": manifest.format_version,
    }


def card_data(manifest: Manifest, license_id: str) -> Any:
    """The YAML header as ``huggingface_hub.DatasetCardData`` (offline; it checks the
    standard fields and keeps ours, configs and dataset_info included)."""
    from huggingface_hub import DatasetCardData

    return DatasetCardData(**card_yaml(manifest, license_id))


def _size_category(n: int) -> str:
    for limit, name in [
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
    ]:
        if n < limit:
            return name
    return "n>10M"


def _fits_table(manifest: Manifest) -> str:
    rows = [
        "  | σ² | tvKa | tvImax | tvIC50 | Ω diag | σ | OFV | converged | subjects "
        "| EBE converged |",
        "  |---|---|---|---|---|---|---|---|---|---|",
    ]
    nlme = manifest.nlme
    total = manifest.n
    for k in manifest.noise_levels:
        fit = nlme.fits[k]
        p = fit.params
        theta = ", ".join(f"{v:.4g}" for v in p.get("theta", []))
        th = theta.split(", ") + ["", "", ""]
        omega = ", ".join(f"{v:.3g}" for v in p.get("omega", []))
        sigma = p.get("sigma")
        sigma_s = f"{sigma:.4g}" if isinstance(sigma, int | float) else str(sigma)
        rows.append(
            f"  | {k} | {th[0]} | {th[1]} | {th[2]} | {omega} | {sigma_s} | "
            f"{fit.ofv:.6g} | {fit.converged} | {fit.n_subjects_used} | "
            f"{nlme.ebe_converged[k]:,}/{total:,} |"
        )
    return "\n".join(rows)


def _fit_subjects_text(manifest: Manifest) -> str:
    """How many training subjects the fits used, as recorded per level (not the setting)."""
    used = sorted({fit.n_subjects_used for fit in manifest.nlme.fits.values()})
    text = ", ".join(f"{u:,}" for u in used)
    requested = manifest.nlme.fit_subjects
    if used != [requested]:
        text += f" (of the {requested:,} requested)"
    return text


def _releases_text(manifest: Manifest) -> str:
    """The card's "Releases" paragraph: public data, and (blind builds) private references."""
    blind = manifest.blind_split
    if blind is None:
        return (
            "Every split here carries its references (`eta`, `eta_noisy_s{k}`, "
            "`eta_ebe_s{k}`, `obs_s{k}`, `z`), so anyone can score on the test split. A "
            "blind build (`synthoct build --blind-test`) instead publishes the test split "
            "as images and `subject_id` only and keeps its references in a private file."
        )
    public = ", ".join(f"`{c}`" for c in BLIND_COLUMNS)
    ref = manifest.references
    return (
        f"This is a **blind** release: the `{blind}` split holds only {public} (config "
        f"`{BLIND_CONFIG}`); the other configs list the other splits. Two releases come "
        f"from one build:\n\n"
        f"- **Public** (this repository): `data/`, `manifest.json` and this card. Train and "
        f"validate on it; predict the `{blind}` split from its images.\n"
        f"- **Private references**: `{references_path(blind)}` ({ref.rows:,} subjects, "
        f"sha256 `{ref.sha256}`) with `references/manifest.json`, held by whoever scores. "
        f"They are never uploaded; `synthoct score --references "
        f"{references_path(blind)}` checks them against this dataset's manifest "
        f"(the sha256 above is part of its fingerprint) before scoring."
    )


def render_card(
    manifest: Manifest,
    template: str | Path | None = None,
    *,
    repo_id: str | None = None,
    revision: str | None = None,
) -> str:
    """The README.md text for a merged manifest.

    ``repo_id`` and ``revision`` go into the quick start (``push`` renders the card it
    uploads with them); unset, it shows ``ORG/synthoct-bench``, as the local card does.
    The result parses back with ``huggingface_hub.DatasetCard``."""
    template_path = Path(template) if template else TEMPLATE_PATH
    if not template_path.is_file():
        raise ValueError(f"card template {template_path} not found; pass template=PATH")
    text = template_path.read_text(encoding="utf-8")
    gen = manifest.generator
    kind = "diffusion" if "diffusion" in gen.name else "phantom"
    license_id, license_text = _LICENSES[kind]
    header = card_data(manifest, license_id).to_dict()
    levels = list(manifest.noise_levels)
    blind = manifest.blind_split
    table_names = config_names(levels) + ([BLIND_CONFIG] if blind else [])
    configs_table = "\n".join(
        ["| config | columns |", "|---|---|"]
        + [
            f"| `{name}` | " + ", ".join(f"`{c}`" for c in config_columns(name, levels)) + " |"
            for name in table_names
        ]
    )
    splits_table = "\n".join(
        ["| split | subjects | first subject_id | shards |", "|---|---|---|---|"]
        + [
            f"| {s}{' (blind)' if s == blind else ''} | {v.n:,} | {v.first_id:,} | {v.shards} |"
            for s, v in manifest.splits.items()
            if v.n > 0
        ]
    )
    gen_json = json.dumps(gen.config, indent=2, sort_keys=True)
    values = {
        "yaml_header": yaml.dump(
            header, Dumper=_NoAliasDumper, sort_keys=False, allow_unicode=True
        ).rstrip(),
        "n_subjects": f"{manifest.n:,}",
        "image_size": manifest.image_size,
        "n_levels": len(levels),
        "repo_hint": repo_id or REPO_PLACEHOLDER,
        "revision_arg": f", revision={json.dumps(revision)}" if revision else "",
        "dataset_version": dataset_version(manifest),
        "format_version": manifest.format_version,
        "configs_table": configs_table,
        "default_config": default_config(levels),
        "eta_dims": ", ".join(str(d) for d in manifest.eta_dims),
        "splits_table": splits_table,
        "seed": manifest.seed,
        "generator_name": gen.name,
        "generator_config": "\n".join("  " + line for line in gen_json.splitlines()),
        "generator_note": (
            "  Each image is a function of the subject's z and its own seed only, so it "
            "does not depend on the batch or worker that rendered it."
        ),
        "simulation_params": json.dumps(manifest.nlme.simulation_params, sort_keys=True),
        "levels": ", ".join(str(k) for k in levels),
        "max_r2": ", ".join(f"{1 / (1 + k):.3g}" for k in levels),
        "fit_subjects": _fit_subjects_text(manifest),
        "fits_table": _fits_table(manifest),
        "fit_options": json.dumps(manifest.nlme.fit_options, sort_keys=True),
        "software": ", ".join(f"{k} {v}" for k, v in manifest.software.items()),
        "fingerprint": manifest_fingerprint(manifest),
        "image_limits": _IMAGE_LIMITS[kind],
        "license_text": license_text,
        "releases": _releases_text(manifest),
        "references": references_markdown(),
        "citation": CITATION_BIBTEX,
    }
    rendered = Template(text).substitute(values)
    from huggingface_hub import DatasetCard

    DatasetCard(rendered)  # a header the Hub cannot parse fails here, not after upload
    return rendered


def write_card(root: str | Path, manifest: Manifest) -> Path:
    """Render and atomically write ``root/README.md``."""
    path = Path(root) / "README.md"
    write_text(path, render_card(manifest))
    return path
