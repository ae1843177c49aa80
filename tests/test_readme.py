"""The README's config reference is the schema's, so it cannot drift."""

from pathlib import Path

from ltvsim.config import reference_table


def test_readme_config_table_is_generated_from_the_schema():
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    assert reference_table() in readme
