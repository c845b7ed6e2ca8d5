"""Fetch the JavaScript the site serves itself, so the built book works with no network.

By default Sphinx loads MathJax, and myst-nb loads require.js and the ipywidgets
HTML manager, from public CDNs: offline, equations stay raw TeX and widgets stay
blank. `make book` runs this script first. It fetches each package below with
`npm pack` (the package's own tarball, none of its dependencies), checks it
against the sha512 pinned here, and unpacks only the files the site needs into
book/_static/npm/ (git-ignored). Sphinx copies that folder into
_build/html/_static/npm/, and _config.yml points `mathjax_path` and
`nb_ipywidgets_js` at it.

    python tools/web_assets.py          # fetch what is missing or outdated
    python tools/web_assets.py --check  # exit 1 if anything is missing

Needs Node.js's `npm` on PATH (npm's cache makes a refetch work offline).
"""
from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENDOR = ROOT / "book" / "_static" / "npm"


@dataclass(frozen=True)
class Package:
    name: str        # npm name
    version: str     # exact version
    integrity: str   # sha512 of the tarball, as npm prints it
    folder: str      # book/_static/npm/<folder>
    keep: tuple      # path prefixes inside the tarball's package/ to unpack
    drop: tuple = ()  # path prefixes to leave out of what `keep` selects

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"


PACKAGES = (
    # require.js: the AMD loader that the widget manager's embed-amd.js needs.
    Package("requirejs", "2.3.8",
            "sha512-7/cTSLOdYkNBNJcDMWf+luFvMriVm7eYxp4BcFCsAX0wF421Vyce5SXP17c+Jd5otXKGNehIonFlyQXSowL6Mw==",
            "requirejs", keep=("require.js", "package.json")),
    # The ipywidgets 8 HTML manager: renders the widget state saved in a notebook.
    # Its fonts (Font Awesome) sit beside embed-amd.js and load relative to it.
    Package("@jupyter-widgets/html-manager", "1.0.15",
            "sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA==",
            "html-manager", keep=("dist/", "package.json"),
            drop=("dist/embed.js", "dist/libembed-amd.js", "dist/embed.js.map")),
    # MathJax 3 (Sphinx 7 writes MathJax 3 markup). Its loader fetches TeX
    # extensions and fonts relative to tex-mml-chtml.js, so whole folders are kept.
    Package("mathjax", "3.2.2",
            "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw==",
            "mathjax", keep=("es5/tex-mml-chtml.js", "es5/a11y/", "es5/adaptors/", "es5/input/",
                             "es5/output/chtml", "es5/sre/", "es5/ui/", "LICENSE", "package.json")),
)
# The embed script keeps its bundled licences in this file; copied whatever the drop list says.
ALWAYS = ("dist/embed.js.LICENSE.txt",)


def sha512(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def stamp(pkg: Package) -> Path:
    return VENDOR / pkg.folder / ".npm-package"


def is_current(pkg: Package) -> bool:
    return stamp(pkg).is_file() and stamp(pkg).read_text().split() == [pkg.spec, pkg.integrity]


def npm_pack(pkg: Package, into: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("tools/web_assets.py: `npm` not found. The offline site serves MathJax and the "
                         "widget manager itself; install Node.js (with npm) and rerun `make book`.")
    out = subprocess.run([npm, "pack", pkg.spec, "--json", "--prefer-offline",
                          "--pack-destination", str(into)],
                         check=True, capture_output=True, text=True, cwd=into).stdout
    return into / json.loads(out)[0]["filename"]


def wanted(pkg: Package, member: str) -> str | None:
    """The path to unpack a tarball member to (relative to its folder), or None to skip it."""
    if not member.startswith("package/"):
        return None
    rel = member[len("package/"):]
    if rel in ALWAYS:
        return rel
    if any(rel.startswith(p) for p in pkg.drop):
        return None
    return rel if any(rel.startswith(p) for p in pkg.keep) else None


def install(pkg: Package) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tarball = npm_pack(pkg, Path(tmp))
        got = sha512(tarball)
        if got != pkg.integrity:
            raise SystemExit(f"{pkg.spec}: tarball sha512 {got} is not the pinned {pkg.integrity}")
        dest = VENDOR / pkg.folder
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        with tarfile.open(tarball) as tar:
            for member in tar.getmembers():
                rel = wanted(pkg, member.name)
                if rel is None or not member.isfile():
                    continue
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(member).read())
    meta = json.loads((dest / "package.json").read_text())
    home = meta.get("homepage") or meta.get("repository") or ""
    home = home.get("url", "") if isinstance(home, dict) else home
    (dest / "SOURCE.txt").write_text(
        f"{pkg.spec} from the npm registry, licence {meta.get('license')}; see {home}\n")
    stamp(pkg).write_text(f"{pkg.spec} {pkg.integrity}\n")
    print(f"web assets: {pkg.spec} -> {dest.relative_to(ROOT)}")


def main(argv: list[str]) -> int:
    missing = [p for p in PACKAGES if not is_current(p)]
    if "--check" in argv:
        for p in missing:
            print(f"missing: {p.spec} (run `python tools/web_assets.py`)")
        return 1 if missing else 0
    for pkg in missing:
        install(pkg)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
