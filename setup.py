"""Build step for the gettext catalogs; everything else about the package is in pyproject.toml.

``build_py`` compiles every ``digest/locale/<lang>/LC_MESSAGES/digest.po`` into the ``.mo``
next to it in the build, so a wheel (``pip install .``) ships compiled catalogs. An editable
install (``pip install -e .``) and a catalog a newsroom adds later need no build: digest
compiles a ``.po`` whose ``.mo`` is missing or older when it first loads it
(``digest/i18n.py``). Babel is a build requirement (``[build-system] requires``).
"""

from __future__ import annotations

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


class BuildPyWithCatalogs(build_py):
    """``build_py`` that also compiles the gettext catalogs into the build."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # digest compiles the .po files of the source tree when it loads them
        target = Path(self.build_lib) / "digest" / "locale"
        self.outputs_mo = compile_catalogs(HERE / "digest" / "locale", target)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode),
                *(str(p) for p in getattr(self, "outputs_mo", []))]


setup(cmdclass={"build_py": BuildPyWithCatalogs})
