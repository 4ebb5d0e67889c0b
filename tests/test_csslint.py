"""The caniemail CSS lint: our output uses nothing major clients lack, except as allowed."""

from __future__ import annotations

from importlib import resources

import pytest
from render_editions import large_edition, make_renderer, person, seed_edition

from digest.render.csslint import caniemail_data, feature_for, lint_css

# (feature, where the finding may be) -> why it is fine
ALLOWED = {
    ("css-color-scheme", "<style> :root"):
        "progressive enhancement: tells Apple Mail the email handles dark mode; ignored elsewhere",
    ("css-border-spacing", "<style> table"):
        "a reset for clients that read it; Outlook gets cellspacing=\"0\" on every table",
    ("css-display-none", "preheader"):
        "the preheader is hidden four ways; each client honours at least one of them",
    ("css-max-height", "preheader"): "see css-display-none (Outlook hides it via mso-hide:all)",
    ("css-opacity", "preheader"): "see css-display-none",
    ("css-overflow", "preheader"): "see css-display-none",
    ("css-border-radius", "button-"):
        "cosmetic: Outlook for Windows shows the button with square corners",
    ("css-white-space", "footer-link"):
        "cosmetic: keeps each footer link on one line (longer words in other languages); "
        "Outlook for Windows may wrap inside one",
}


def allowed(finding) -> bool:
    return any(finding.feature == feature and where in finding.where
               for feature, where in ALLOWED)


@pytest.mark.parametrize("edition", [seed_edition(), large_edition()], ids=["seed", "large"])
def test_our_output_uses_only_supported_or_allowed_css(edition):
    html, _ = make_renderer().variant(edition).fill(person())
    findings = lint_css(html)
    assert [str(f) for f in findings if not allowed(f)] == []


def test_every_allowance_is_still_needed():
    html, _ = make_renderer().variant(large_edition()).fill(person())
    used = {(f.feature, where) for f in lint_css(html) for feature, where in ALLOWED
            if f.feature == feature and where in f.where}
    assert used == set(ALLOWED)


def test_lint_flags_unsupported_css_outside_media_queries_only():
    html = """<!DOCTYPE html><html><head><style>
    .x { position: absolute; }
    @media screen and (max-width: 599px) { .y { display: flex !important; } }
    </style></head><body>
    <div style="display:flex; padding-left:4px; background:linear-gradient(#000000, #ffffff)">x</div>
    <!--[if mso]><div style="position:relative">x</div><![endif]-->
    </body></html>"""
    findings = {(f.feature, f.declaration) for f in lint_css(html)}
    assert ("css-position", "position:absolute") in findings
    assert ("css-display-flex", "display:flex") in findings
    assert any(feature == "css-linear-gradient" for feature, _ in findings)
    assert not any("padding" in declaration for _, declaration in findings)
    assert not any(feature == "css-position" and "relative" in d for feature, d in findings)
    flex = next(f for f in lint_css(html) if f.feature == "css-display-flex")
    assert "outlook.windows" in flex.clients
    assert "<div" in flex.where


@pytest.mark.parametrize(("prop", "feature"), [
    ("padding-left", "css-padding"), ("border-top-width", "css-border"),
    ("margin-bottom", "css-margin"), ("max-width", "css-max-width"),
    ("border-radius", "css-border-radius"), ("color", None), ("mso-hide", None),
    ("-webkit-text-size-adjust", None),
])
def test_properties_map_to_caniemail_features(prop, feature):
    assert feature_for(prop) == feature


def test_the_data_and_its_licence_ship_with_the_package():
    data = caniemail_data()
    assert len(data) > 250
    assert data["css-position"]["support"]["gmail.desktop-webmail"] == "n"
    licence = resources.files("digest").joinpath("data/caniemail-LICENSE").read_text("utf-8")
    assert "MIT License" in licence and "Rémi Parmentier" in licence
