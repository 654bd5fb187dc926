"""The shape of the code (ARCHITECTURE.md): imports point downwards only, the library below the
Lightning layer knows nothing of Lightning or Hydra, entry points are thin, files stay small."""

import ast
from pathlib import Path

import pytest

from conftest import REPO

SRC = REPO / "src" / "ddpm"

# Lower numbers are lower layers; a module may import its own layer or a lower one.
LAYERS = {
    "checks": 0, "targets": 0, "files": 0, "random": 0, "schedule": 0, "checkpoint": 0, "betas": 0,
    "odeint": 0, "figures": 0, "power_ema": 0,
    "parameterization": 1, "likelihood": 1,
    "diffusion": 2,
    "losses": 3, "vae": 3, "analytic_variance": 3, "timestep_sampler": 3,
    "paths": 4,
    "oracles": 5, "ode_likelihood": 5, "probability_flow": 5,
    "samplers": 5, "nets": 5, "data": 5, "fewstep": 5,
    "models": 6, "repa": 6,
    "config": 7, "latents": 7,
    "training": 8, "evaluation": 8,
    "cli": 9, "estimate_gamma": 9, "export": 9, "posthoc_ema": 9,
}  # fmt: skip
FRAMEWORKS = ("lightning", "hydra", "omegaconf", "pytorch_lightning")
# LightningDataModule is the data seam the framework promises (a user's data module plugs in).
FRAMEWORK_ALLOWED_BELOW = {"data": ("lightning",), "latents": ("lightning",)}
SIBLINGS_APART = {("training", "evaluation"), ("evaluation", "training")}


def modules():
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        yield (rel.parts[0].removesuffix(".py") if rel.parts[0] != "__init__.py" else ""), path


def imports(path: Path) -> list[tuple[str, int]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, node.lineno))
        elif isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
    return out


def test_every_module_has_a_layer():
    missing = {top for top, _ in modules() if top and top not in LAYERS}
    assert not missing, f"give these a layer in LAYERS: {missing}"


def test_imports_point_downwards_only():
    bad = []
    for top, path in modules():
        if not top:
            continue
        for module, line in imports(path):
            parts = module.split(".")
            if parts[0] == "ddpm" and len(parts) > 1:
                target = parts[1]
                if LAYERS[target] > LAYERS[top] or (top, target) in SIBLINGS_APART:
                    bad.append(f"{path.relative_to(REPO)}:{line} ({top}) imports ddpm.{target}")
            elif (
                parts[0] in FRAMEWORKS
                and LAYERS[top] < LAYERS["training"]
                and parts[0] not in FRAMEWORK_ALLOWED_BELOW.get(top, ())
            ):
                bad.append(f"{path.relative_to(REPO)}:{line} ({top}) imports {module}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("script", ["train.py", "sample.py", "evaluate.py"])
def test_entry_points_are_one_library_call(script):
    text = (REPO / script).read_text()
    assert len(text.splitlines()) < 40
    calls = [n for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Call)]
    assert len(calls) == 1  # run(NAME, library_function)


def test_no_file_over_300_lines():
    files = [
        *SRC.rglob("*.py"),
        *(REPO / "tests").glob("*.py"),
        *(REPO / "benchmarks").glob("*.py"),
    ]
    long = {
        str(p.relative_to(REPO)): n for p in files if (n := len(p.read_text().splitlines())) > 300
    }
    assert not long


def test_the_library_below_lightning_does_not_load_it_indirectly():
    """Not only no direct import: importing the lower layers (the config layer included) loads
    no Lightning, Hydra or OmegaConf at all."""
    import subprocess
    import sys

    code = (
        "import sys; import ddpm.config, ddpm.samplers, ddpm.nets, ddpm.losses, ddpm.vae, "
        "ddpm.oracles, ddpm.ode_likelihood, ddpm.checkpoint, ddpm.data.info; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'lightning', 'hydra', "
        "'omegaconf', 'pytorch_lightning'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
