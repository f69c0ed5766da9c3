"""The wheel ships the configs: an installed gan_cli runs from any directory."""
import subprocess
import sys

from tests.conftest import REPO


def test_installed_wheel_finds_its_configs_from_another_directory(tmp_path):
    wheels, site, elsewhere = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(REPO)],
                   check=True, capture_output=True)
    (wheel,) = wheels.glob("gan_cli-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True, capture_output=True)
    assert (site / "gan_cli" / "configs" / "train.yaml").is_file()
    assert (site / "gan_cli" / "configs" / "model" / "dcgan.yaml").is_file()
    assert (site / "gan_cli" / "prep" / "writer.py").is_file()  # every code folder ships (gan prepare's)

    code = ("import sys, gan_cli; print('FILE', gan_cli.__file__); "
            "sys.argv = ['gan', 'train', 'model=mlp', 'loss=hinge', '--cfg', 'job']; "
            "from gan_cli.cli import main; main()")
    out = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, capture_output=True, text=True,
                         env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert f"FILE {site}" in out.stdout  # the installed copy, not the checkout
    assert "gan_cli.models.mlp.build" in out.stdout and "Hinge" in out.stdout


def test_every_subpackage_is_listed_for_the_wheel():
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    code = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "gan_cli").rglob("*.py")}  # namespace folders too
    configs = {".".join(("gan_cli", *p.relative_to(REPO).parts)) for p in (REPO / "configs").rglob("*")
               if p.is_dir()} | {"gan_cli.configs"}
    assert code | configs == listed  # a folder left out makes setuptools warn, and its files may not ship


def test_the_wheel_builds_without_warnings(tmp_path):
    out = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "wheel", "--no-deps",
                          "--no-build-isolation", "-w", str(tmp_path), str(REPO)],
                         check=True, capture_output=True, text=True)
    assert "warning" not in (out.stdout + out.stderr).lower(), out.stdout + out.stderr
