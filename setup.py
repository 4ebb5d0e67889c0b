"""Build step for the gettext catalogs and the shipped templates; everything else about the
package is in pyproject.toml.

``build_py`` compiles every ``digest/locale/<lang>/LC_MESSAGES/digest.po`` into the ``.mo``
next to it in the build, so a wheel (``pip install .``) ships compiled catalogs. An editable
install (``pip install -e .``) and a catalog a newsroom adds later need no build: digest
compiles a ``.po`` whose ``.mo`` is missing or older when it first loads it
(``digest/i18n.py``). Babel is a build requirement (``[build-system] requires``).

``build_py`` also copies the top-level ``templates/`` into the build's ``digest/templates/``,
so a wheel renders the email and serves the pages with no templates folder of its own; a
newsroom's ``digest.templates_dir`` comes first, template by template (``digest/shipped.py``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


def compile_catalogs(source: Path, target: Path) -> list[Path]:
    """Compile each ``*.po`` under ``source`` to a ``.mo`` at the same place under ``target``
    (fuzzy entries left out, as ``pybabel compile`` does); returns the files written.

    :raises ValueError: naming a catalog whose messages and translations do not match
        (a python-format placeholder missing or misspelt).
    """
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    written = []
    for po in sorted(source.glob("*/LC_MESSAGES/*.po")):
        with po.open("rb") as fh:
            catalog = read_po(fh)
        problems = [f"{msg.id!r}: {err}" for msg, errors in catalog.check() for err in errors]
        if problems:
            raise ValueError(f"The catalog {po} has errors: {'; '.join(problems)}")
        mo = target / po.relative_to(source).with_suffix(".mo")
        mo.parent.mkdir(parents=True, exist_ok=True)
        with mo.open("wb") as fh:
            write_mo(fh, catalog, use_fuzzy=False)
        written.append(mo)
    return written


def copy_templates(source: Path, target: Path) -> list[Path]:
    """Copy the shipped templates (``templates/``: email, web pages, the desk and its static
    files) to ``target``, the package's ``digest/templates`` in the build, where
    ``digest/shipped.py`` finds them in an installed digest; returns the files written.

    :raises FileNotFoundError: when ``source`` is missing (an sdist made without
        MANIFEST.in's ``graft templates``): a wheel without them could render nothing.
    """
    if not (source / "email").is_dir():
        raise FileNotFoundError(f"The shipped templates are missing from {source}; build "
                                "from a checkout or an sdist that includes templates/.")
    written = []
    for path in sorted(source.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".mo":
            out = target / path.relative_to(source)
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, out)
            written.append(out)
    return written


class BuildPyWithCatalogs(build_py):
    """``build_py`` that also compiles the gettext catalogs into the build and copies the
    shipped templates into the package."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # the source tree's catalogs (compiled on load) and templates/ are used
        target = Path(self.build_lib) / "digest" / "locale"
        self.outputs_mo = compile_catalogs(HERE / "digest" / "locale", target)
        self.outputs_templates = copy_templates(HERE / "templates",
                                                Path(self.build_lib) / "digest" / "templates")

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode),
                *(str(p) for p in getattr(self, "outputs_mo", [])),
                *(str(p) for p in getattr(self, "outputs_templates", []))]


setup(cmdclass={"build_py": BuildPyWithCatalogs})
