"""The client is a distribution of its own (issue 12, item 4): ``tbal-client``, built from ``client/``.

Its wheel is built here (offline: ``pip wheel --no-build-isolation``, from a copy so that nothing is left
in the checkout), and read as an installer would: the requirements in its METADATA are httpx and numpy
only, with version ranges; it holds ``tbal_client`` and nothing else; its entry points give the
``tbal-client`` command and the ``tbal`` command's client verbs; installed alone into a folder it imports
with the library and the service unimportable. And the ``tbal`` wheel, built from what the Dockerfile
copies (``client/`` included), no longer carries the client.
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "client"
PACKAGE_COPY = ("pyproject.toml", "README.md", "tbal", "app", "worker", "migrations", "client")
"""What the Dockerfile copies to install the service (its build context), the client's folder included."""
JUNK = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")


def pip(*args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", *args, "-q"], capture_output=True, text=True, timeout=240, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]


def build_wheel(source: Path, out: Path) -> Path:
    """``pip wheel`` without dependencies and without build isolation (no download), one wheel back."""
    pip("wheel", "--no-deps", "--no-build-isolation", str(source), "-w", str(out))
    (wheel,) = out.glob("*.whl")
    return wheel


def copy_tree(names: tuple[str, ...], into: Path) -> Path:
    into.mkdir()
    for name in names:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, into / name, ignore=JUNK)
        else:
            shutil.copy2(source, into / name)
    return into


def dist_info(wheel: Path, name: str) -> str:
    with zipfile.ZipFile(wheel) as archive:
        (path,) = [n for n in archive.namelist() if n.endswith(f".dist-info/{name}")]
        return archive.read(path).decode("utf-8")


def entry_points(wheel: Path) -> dict[str, dict[str, str]]:
    parser = configparser.ConfigParser(delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep the names' case
    try:
        parser.read_string(dist_info(wheel, "entry_points.txt"))
    except ValueError:  # no entry_points.txt at all
        return {}
    return {section: dict(parser[section]) for section in parser.sections()}


@pytest.fixture(scope="module")
def client_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("client-wheel")
    return build_wheel(copy_tree(("client",), work / "src") / "client", work / "dist")


def _requirement_name(requirement: str) -> str:
    """The distribution name a Requires-Dist line starts with, lower-cased."""
    name = re.match(r"[A-Za-z0-9_.-]+", requirement)
    assert name is not None, f"no distribution name at the start of {requirement!r}"
    return name.group(0).lower()


def test_the_client_wheel_requires_httpx_and_numpy_only(client_wheel: Path) -> None:
    metadata = Parser().parsestr(dist_info(client_wheel, "METADATA"))
    assert metadata["Name"] == "tbal-client"
    requires = metadata.get_all("Requires-Dist") or []
    names = {_requirement_name(r) for r in requires}
    assert names == {"httpx", "numpy"}, requires
    for requirement in requires:  # ranges: a floor and a ceiling, so a major release cannot break it
        assert ">=" in requirement and "<" in requirement.replace("<=", ""), requirement


def test_the_client_wheel_holds_tbal_client_only(client_wheel: Path) -> None:
    with zipfile.ZipFile(client_wheel) as archive:
        names = archive.namelist()
    tops = {name.split("/")[0] for name in names}
    dist_info_folder = "-".join(client_wheel.name.split("-")[:2]) + ".dist-info"  # tbal_client-0.1.0
    assert tops == {"tbal_client", dist_info_folder}, tops
    modules = {Path(n).name for n in names if n.startswith("tbal_client/")}
    assert {"__init__.py", "client.py", "cli.py", "types.py"} <= modules


def test_the_client_wheel_declares_its_command_and_the_tbal_verbs(client_wheel: Path) -> None:
    points = entry_points(client_wheel)
    assert points["console_scripts"] == {"tbal-client": "tbal_client.cli:main"}
    assert points["tbal.commands"] == {"client": "tbal_client.cli:register"}


_ALONE = """
import sys
sys.path.insert(0, sys.argv[1])
for name in ("tbal", "app", "worker", "torch", "fastapi", "sqlalchemy"):
    sys.modules[name] = None  # import raises ImportError: the library and the service are not there
import tbal_client, tbal_client.cli
assert tbal_client.__file__.startswith(sys.argv[1]), tbal_client.__file__
try:
    tbal_client.cli.main(["--help"])
except SystemExit as done:
    assert done.code == 0, done.code
"""


def test_the_installed_client_imports_without_the_library(client_wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    pip("install", "--no-deps", "--no-index", "--target", str(target), str(client_wheel))
    assert (target / "bin" / "tbal-client").is_file()
    done = subprocess.run(
        [sys.executable, "-c", _ALONE, str(target)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,  # not the checkout: its folders must not be found instead of the installed copy
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("usage: tbal-client"), done.stdout[:300]


def test_the_tbal_wheel_no_longer_carries_the_client(tmp_path: Path) -> None:
    wheel = build_wheel(copy_tree(PACKAGE_COPY, tmp_path / "src"), tmp_path / "dist")
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/")[0] for name in archive.namelist()}
    assert {"tbal", "app", "worker", "migrations"} <= tops
    assert not {top for top in tops if top.startswith(("tbal_client", "client"))}, tops
    assert "client" not in entry_points(wheel).get("tbal.commands", {})
    assert entry_points(wheel)["tbal.commands"]["service"] == "app.cli:register"
