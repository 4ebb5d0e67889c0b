"""Article pages: the real seed page field by field, every damage real pages come with, and fuzzing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digest.errors import ParseError
from digest.models import Block, Story, story_id
from digest.sources import parse_page
from digest.sources.pages import is_subheading

PAGES = Path(__file__).resolve().parent / "fixtures" / "pages"
SEED = (PAGES / "seed.txt").read_bytes()
AS_OF = datetime(2025, 8, 23, 12, 0, tzinfo=UTC)
FOUR_WEEKS = datetime(2025, 7, 26, 12, 0, tzinfo=UTC)
ONE_MONTH = datetime(2025, 7, 23, 12, 0, tzinfo=UTC)
LEAD_HEADLINE = "South Korean President Lee Jae Myung Meets Japanese PM Ishiba in Tokyo"

# Read off the seed page by eye: (section, headline, published_at) in page order.
SEED_TEASERS = [
    ("Sports", "De Minaur Triumphs at Washington Open After Thrilling Comeback", FOUR_WEEKS),
    ("Lifestyle", "Humanism Camp Engages 250 Youths in Summer Fest 2025", FOUR_WEEKS),
    ("Business", "Kenvue Dismisses CEO Thibaut Mongon as Strategic Review Advances", ONE_MONTH),
    (
        "Entertainment",
        "Detaşe-Sabah Violin Ensemble Captivates at Gabala Music Festival",
        FOUR_WEEKS,
    ),
    ("Entertainment", "Baku Metro Extends Hours for Justin Timberlake Concert", FOUR_WEEKS),
    (
        "World",
        "ASEAN Gears Up for Historic Joint Meeting of Foreign and Economic Ministers",
        ONE_MONTH,
    ),
    (
        "Top Stories",
        "Colombian Senator Miguel Uribe Shows Signs of Recovery After Attack",
        ONE_MONTH,
    ),
    ("Top Stories", "Caregivers in Singapore Seek Increased Support Amid Rising Stress", ONE_MONTH),
    ("Sports", "Tupou and Daugunu Join First Nations Squad for Lions Clash", ONE_MONTH),
    ("Business", "Oil Prices Surge Following New EU Sanctions on Russia", ONE_MONTH),
    ("Health", "New Study Challenges Assumptions About Aging and Inflammation", FOUR_WEEKS),
    ("Business", "U.S. House Approves Stablecoin Bill, Sends to Trump for Signature", ONE_MONTH),
]


def parse(data: bytes, **kwargs: object) -> tuple[list[Story], list[tuple[int | None, str]]]:
    kwargs.setdefault("as_of", AS_OF)
    result = parse_page(data, source="page.txt", **kwargs)  # type: ignore[arg-type]
    assert result.errors == []
    return result.stories, [(s.line, s.reason) for s in result.skipped]


# --- the real seed page ---------------------------------------------------------------


def test_seed_lead_story_field_by_field() -> None:
    stories, skipped = parse(SEED)
    lead = stories[0]
    assert skipped == []
    assert lead.is_lead is True
    assert lead.section == "Politics"
    assert lead.headline == LEAD_HEADLINE
    assert lead.id == story_id("Politics", LEAD_HEADLINE)
    assert lead.url is None
    assert lead.published_at is None  # the lead's section line carries no age
    assert lead.source == "page.txt"
    assert lead.summary == lead.body[0].text
    assert lead.summary.startswith(
        "South Korean President Lee Jae Myung arrived in Tokyo on August 23, 2023,"
    )
    assert lead.summary.endswith("for discussions with U.S. President Donald Trump.")
    assert lead.summary_html is None and lead.image is None and lead.author is None


def test_seed_body_has_nine_paragraphs_and_the_two_subheadings() -> None:
    lead = parse(SEED)[0][0]
    kinds = [block.kind for block in lead.body]
    assert len(lead.body) == 11
    assert [b for b in lead.body if b.kind == "subheading"] == [
        Block("subheading", "Strengthening Ties Amid Historical Challenges"),
        Block("subheading", "Upcoming Meeting with President Trump"),
    ]
    assert kinds.index("subheading") == 2
    assert kinds[6] == "subheading"
    assert kinds.count("paragraph") == 9
    # typographic quotes and apostrophes come through untouched
    assert lead.body[1].text.startswith("This summit marks Lee’s second in-person meeting")
    assert lead.body[4].text.startswith("“Korea-Japan relations simultaneously contain")
    assert lead.body[-1].text.endswith("the broader dynamics of the U.S.-South Korea alliance.")


def test_seed_teasers_with_sections_and_resolved_ages() -> None:
    stories, _ = parse(SEED)
    teasers = stories[1:]
    assert [(s.section, s.headline, s.published_at) for s in teasers] == SEED_TEASERS
    assert all(not s.is_lead and s.url is None and s.body == () for s in teasers)
    assert all(s.id == story_id(s.section, s.headline) for s in teasers)
    assert len({s.id for s in stories}) == 13
    assert len({s.section for s in stories}) == 8
    assert {s.section for s in teasers} == {
        "Sports", "Lifestyle", "Business", "Entertainment", "World", "Top Stories", "Health",
    }  # fmt: skip


def test_seed_ages_follow_the_capture_time() -> None:
    later = AS_OF + timedelta(days=10)
    stories, _ = parse(SEED, as_of=later)
    assert stories[1].published_at == later - timedelta(weeks=4)
    assert stories[3].published_at == datetime(2025, 8, 2, 12, 0, tzinfo=UTC)


def test_seed_sections_go_through_the_section_map() -> None:
    stories, _ = parse(
        SEED, section_map={"top stories": "Front Page", "politics": "Politics & Power"}
    )
    assert stories[0].section == "Politics & Power"
    assert [s.section for s in stories if s.headline.startswith(("Colombian", "Caregivers"))] == [
        "Front Page"
    ] * 2
    assert stories[0].id == story_id("Politics & Power", LEAD_HEADLINE)


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param(lambda b: b.replace(b"\n", b"\r\n"), id="crlf"),
        pytest.param(lambda b: b.replace(b"\n", b"\r"), id="cr"),
        pytest.param(lambda b: b"\xef\xbb\xbf" + b, id="bom"),
        pytest.param(lambda b: b"\xef\xbb\xbf" + b.replace(b"\n", b"\r\n"), id="bom-crlf"),
        pytest.param(lambda b: b.decode().encode("utf-16"), id="utf16-bom"),
        pytest.param(lambda b: b.replace(b"\n-\n", b"\n\n-\n\n") + b"\n\n\n", id="blank-lines"),
        pytest.param(lambda b: b.replace(b"\n", b"  \n"), id="trailing-spaces"),
    ],
)
def test_seed_line_endings_marks_and_spacing_do_not_change_the_result(variant) -> None:  # type: ignore[no-untyped-def]
    expected = parse(SEED)
    assert parse(variant(SEED)) == expected


# --- damaged and unusual pages --------------------------------------------------------


def test_edge_cases_fixture_scripts_ages_missing_parts_and_duplicates() -> None:
    data = (PAGES / "edge-cases.txt").read_bytes()
    as_of = datetime(2026, 11, 17, 7, 0, tzinfo=UTC)
    stories, skipped = parse(
        data, as_of=as_of, section_map={"tech": "Technology", "markets": "Business"}
    )
    lead = stories[0]
    assert lead.section == "سياسة"
    assert lead.headline == "Лидеры согласовали новый пакет помощи на заседании в Брюсселе"
    assert [b.kind for b in lead.body] == ["paragraph", "paragraph"]
    got = [(s.section, s.headline[:24], s.published_at) for s in stories[1:]]
    assert got == [
        ("World", "東京で新しい地下鉄路線が開業、通勤客に歓迎される", as_of),
        ("Technology", "Startups Flock to the Co", as_of - timedelta(minutes=12)),
        ("Business", "Copper Hits a Two-Year H", as_of - timedelta(hours=2)),
        ("Sports", "Underdogs Clinch the Cup", as_of - timedelta(days=1)),
        ("Health", "Clinics Extend Hours for", as_of - timedelta(weeks=3)),
        ("Business", "Regulator Opens Inquiry ", datetime(2026, 9, 17, 7, 0, tzinfo=UTC)),
        ("رياضة", "المنتخب يفوز بالبطولة لل", datetime(2025, 11, 17, 7, 0, tzinfo=UTC)),
        ("Opinion", "Why the Four-Day Week De", None),
        ("Culture", "Museum Reopens With a Re", as_of - timedelta(hours=1)),
        ("Politics", "Parliament Rejects the L", as_of - timedelta(days=1)),
    ]
    assert skipped == [
        (33, "the teaser 'Science4 weeks ago' has no headline"),
        (36, "duplicate of line 15"),
    ]


def test_truncated_page_keeps_what_is_complete() -> None:
    stories, skipped = parse((PAGES / "truncated.txt").read_bytes())
    assert [s.headline for s in stories] == [
        "A Lead That Survived the Cut",
        "A Teaser That Made It",
    ]
    assert skipped == [
        (
            8,
            "the teaser 'Business1 month ago' has no headline (the page ends there: was it cut short?)",
        )
    ]


def test_windows_1252_page_is_read_and_reported() -> None:
    stories, skipped = parse((PAGES / "windows-1252.txt").read_bytes())
    assert stories[0].headline == "Le Café Crème Coûte Désormais 3 € à Paris"
    assert stories[0].summary == "Un paragraphe écrit en Windows-1252 : « déjà vu »."
    assert (stories[1].section, stories[1].headline) == (
        "Économie",
        "Les Prix de l’Énergie Baissent",
    )
    assert skipped == [
        (None, "the file is not UTF-8; it was read as Windows-1252 (nothing was dropped)")
    ]


def test_stray_invalid_bytes_in_utf8_are_replaced_and_reported_by_line() -> None:
    data = SEED.replace(b"Baku Metro", b"Baku \xff\xfeMetro")
    stories, skipped = parse(data)
    baku = next(s for s in stories if s.headline.startswith("Baku"))
    assert baku.headline == "Baku \ufffd\ufffdMetro Extends Hours for Justin Timberlake Concert"
    assert skipped == [
        (29, "bytes that are not UTF-8 were replaced with \ufffd on this line (the line was kept)")
    ]
    assert stories[4].headline.startswith("Detaşe")  # the valid UTF-8 around it is intact


def test_missing_separator_between_two_teasers_still_gives_both() -> None:
    page = "Politics\nLead Headline Here\n-\nSports4 weeks ago\nFirst Teaser\nBusiness1 month ago\nSecond Teaser\n"
    stories, skipped = parse(page.encode())
    assert [(s.section, s.headline) for s in stories[1:]] == [
        ("Sports", "First Teaser"),
        ("Business", "Second Teaser"),
    ]
    assert skipped == []


def test_a_header_where_a_headline_should_be_means_the_first_lost_its_headline() -> None:
    page = "Politics\nLead Headline Here\n-\nSports4 weeks ago\nBusiness1 month ago\nThe Business Teaser\n"
    stories, skipped = parse(page.encode())
    assert [(s.section, s.headline) for s in stories[1:]] == [("Business", "The Business Teaser")]
    assert skipped == [(4, "the teaser 'Sports4 weeks ago' has no headline")]


def test_headline_that_is_only_punctuation_is_empty() -> None:
    page = "Politics\nLead Headline Here\n-\nSports4 weeks ago\n!!! ???\n"
    stories, skipped = parse(page.encode())
    assert len(stories) == 1
    assert skipped == [(4, "the teaser 'Sports4 weeks ago' has an empty headline")]
    page = "Politics\nLead Headline Here\n-\nSports4 weeks ago\n\u200b...\n"
    assert parse(page.encode())[1] == [(4, "the teaser 'Sports4 weeks ago' has an empty headline")]


def test_page_with_a_lead_and_no_teasers() -> None:
    stories, skipped = parse(b"World2 hours ago\nA Lone Lead Story\nIts only paragraph.\n")
    assert len(stories) == 1 and skipped == []
    assert stories[0].published_at == AS_OF - timedelta(hours=2)
    assert stories[0].body == (Block("paragraph", "Its only paragraph."),)


def test_page_with_only_teasers_has_no_lead() -> None:
    stories, _ = parse(b"-\nSports4 weeks ago\nA Teaser\n-\nWorld1 day ago\nAnother Teaser\n")
    assert [s.is_lead for s in stories] == [False, False]


def test_lead_section_without_headline_is_skipped_but_teasers_stay() -> None:
    stories, skipped = parse(b"Politics\n-\nSports4 weeks ago\nA Teaser\n")
    assert [s.headline for s in stories] == ["A Teaser"]
    assert skipped == [(1, "the lead section 'Politics' has no headline")]


def test_teaser_repeating_the_lead_is_a_duplicate() -> None:
    _, skipped = parse(b"Politics\nSame Story\n-\nPolitics1 day ago\nSame   Story\n")
    assert skipped == [(4, "duplicate of line 1")]


def test_a_naive_capture_time_is_taken_as_utc() -> None:
    stories, _ = parse(SEED, as_of=datetime(2025, 8, 23, 12, 0))
    assert stories[1].published_at == FOUR_WEEKS


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "is empty"),
        (b" \r\n\t\n\xef\xbb\xbf", "is empty"),
        (b"\xef\xbb\xbf", "is empty"),
        (b"Politics\n", "has no usable headline"),
        (b"Politics\n-\n-\nSports4 weeks ago\n", "has no usable headline"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "binary data"),
        (b"<!DOCTYPE html>\n<html><body>Hi</body></html>", "HTML or XML document"),
    ],
)
def test_unusable_pages_raise_one_parse_error_naming_the_source(data: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message) as info:
        parse_page(data, source="content/front-page.txt", as_of=AS_OF)
    assert info.value.source == "content/front-page.txt"
    assert str(info.value).startswith("content/front-page.txt ")


# --- the subheading heuristic ---------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "Strengthening Ties Amid Historical Challenges",
        "Upcoming Meeting with President Trump",
        "What Comes Next",
        "The Road to 2030",
        "Background",
    ],
)
def test_subheadings(line: str) -> None:
    assert is_subheading(line)


@pytest.mark.parametrize(
    "line",
    [
        "Lee expressed that it is essential not to overlook the positive aspects.",
        "Why it matters:",
        "“A Quote in Title Case”",
        "the lower-case start of a sentence",
        "Mostly Title Case but then some words are not",
        "東京で新しい地下鉄路線が開業",
        "2025 Results",
        "A Very Long Line That Is Title Case Throughout but Goes On Far Too Long to Be a Heading Ever",
        "",
    ],
)
def test_not_subheadings(line: str) -> None:
    assert not is_subheading(line)


def test_no_seed_paragraph_is_a_subheading_and_the_last_line_never_is() -> None:
    lines = SEED.decode().splitlines()[2:15]
    paragraphs = [line for line in lines if line and line.endswith((".", "”"))]
    assert len(paragraphs) == 9
    assert not any(is_subheading(p) for p in paragraphs)
    assert not is_subheading("Reporting by Jane Doe", is_last=True)


# --- fuzzing --------------------------------------------------------------------------


def _check_result(data: bytes) -> None:
    try:
        result = parse_page(data, source="fuzz.txt", as_of=AS_OF)
    except ParseError as exc:
        assert exc.source == "fuzz.txt"
        return
    assert result.stories, "a page without stories must raise instead"
    assert len({s.id for s in result.stories}) == len(result.stories)
    lines = max(1, data.count(b"\n") + data.count(b"\r") + 1)
    for story in result.stories:
        assert any(ch.isalnum() for ch in story.headline)
        assert "\n" not in story.headline and "\r" not in story.headline
        assert story.published_at is None or story.published_at.tzinfo is not None
    for item in result.skipped:
        assert item.line is None or 1 <= item.line <= lines


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=2000))
def test_random_bytes_never_raise_anything_but_parse_error(data: bytes) -> None:
    _check_result(data)


_SECTIONS = st.sampled_from(["Politics", "Top Stories", "World", "رياضة", "Спорт", "", "Snow"])
_AGES = st.sampled_from(
    [
        "",
        "Just now",
        "12 mins ago",
        "2 hours ago",
        "1 day ago",
        "3 weeks ago",
        "an hour ago",
        "999999999 years ago",
    ]
)
_LINES = st.one_of(
    st.builds(lambda s, a: s + a, _SECTIONS, _AGES),
    st.sampled_from(
        ["-", "---", "", "   ", "Headline Here", "東京で開業", "“Quoted.”", "A Subheading Line"]
    ),
    st.text(max_size=40),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(_LINES, max_size=40),
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
    bom=st.booleans(),
)
def test_page_shaped_text_never_raises_anything_but_parse_error(
    lines: list[str], newline: str, bom: bool
) -> None:
    data = ("\ufeff" if bom else "") + newline.join(lines)
    _check_result(data.encode("utf-8", errors="surrogatepass"))


@settings(max_examples=200, deadline=None)
@given(cut=st.integers(min_value=0, max_value=len(SEED)))
def test_seed_cut_at_any_byte_never_raises_anything_but_parse_error(cut: int) -> None:
    _check_result(SEED[:cut])
