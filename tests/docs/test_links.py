"""Every relative link in README.md, CHANGELOG.md and docs/*.md resolves: the file exists, and a ``#anchor``
names a heading of the page it points at (GitHub's heading slugs)."""

import re
from pathlib import Path

import pytest

ROOT = next(parent for parent in Path(__file__).resolve().parents if (parent / "pyproject.toml").exists())
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^```.*?^```", re.M | re.S)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_EXTERNAL = re.compile(r"\A[a-z][a-z0-9+.-]*:", re.I)  # http:, https:, mailto: …


def prose(text):
    """The page without fenced code blocks and code spans: links inside code are not links."""
    return _CODE_SPAN.sub("", _FENCE.sub("", text))


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped (not ``-`` or ``_``), spaces to ``-``."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path):
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", _FENCE.sub("", path.read_text()), re.M)
    return {slug(heading) for heading in headings}


def relative_links(path):
    return [target for target in _LINK.findall(prose(path.read_text())) if not _EXTERNAL.match(target)]


def broken_links(page):
    """The relative links of ``page`` that name a missing file or a missing heading, with the reason."""
    broken = []
    for target in relative_links(page):
        file_part, _, anchor = target.partition("#")
        destination = (page.parent / file_part).resolve() if file_part else page
        if not destination.exists():
            broken.append(f"{target}: no such file")
        elif anchor and (destination.suffix != ".md" or anchor not in anchors(destination)):
            broken.append(f"{target}: no heading #{anchor}")
    return broken


def test_the_pages_exist_and_link_somewhere():
    assert (ROOT / "docs").is_dir()
    assert len(PAGES) >= 10
    assert relative_links(ROOT / "README.md")


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_relative_links_resolve(page):
    assert broken_links(page) == []


@pytest.mark.parametrize("heading, expected", [
    ("What happens at `POST /oauth2/token`", "what-happens-at-post-oauth2token"),
    ("`TOKEN_EXCHANGE` keys", "token_exchange-keys"),
    ("Deployment: several instances behind a reverse proxy", "deployment-several-instances-behind-a-reverse-proxy"),
    ("Reverse proxy (TLS terminated there)", "reverse-proxy-tls-terminated-there"),
])
def test_slug_follows_github(heading, expected):
    assert slug(heading) == expected


def test_a_broken_link_is_caught(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## Its section\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n\n[ok](#title) [ok](other.md#its-section) [ok](https://example.com/x.md)\n"
        "[gone](missing.md) [no anchor](#nowhere) [no anchor there](other.md#title)\n"
        "`[in code](missing.md)`\n```\n# not a heading\n[in a block](missing.md)\n```\n"
    )
    assert anchors(page) == {"title"}
    assert broken_links(page) == [
        "missing.md: no such file", "#nowhere: no heading #nowhere", "other.md#title: no heading #title",
    ]
