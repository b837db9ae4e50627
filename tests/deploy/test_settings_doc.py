"""docs/deploy.md cannot drift from the code: every setting and every container is in it."""

from __future__ import annotations

from tests.deploy.deployment import ROOT, services, settings_table

DOC = ROOT / "docs" / "deploy.md"


def test_deploy_doc_lists_every_setting_of_every_settings_class() -> None:
    table = settings_table()
    text = DOC.read_text(encoding="utf-8")
    every_class = table.classes_read_by("gateway")  # the gateway reads them all
    names = set().union(*(table.env_names(cls) for cls in every_class))
    assert len(names) > 100
    missing = sorted(name for name in names if f"`{name}`" not in text)
    assert not missing, f"docs/deploy.md lacks {missing}; run python docs/settings_table.py"


def test_deploy_doc_settings_table_is_the_one_the_classes_write() -> None:
    table = settings_table()
    text = DOC.read_text(encoding="utf-8")
    assert table.replace_table(text, table.render()) == text, (
        "docs/deploy.md's settings table is stale: run python docs/settings_table.py"
    )


def test_deploy_doc_names_every_container_of_the_compose_file() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = sorted(name for name in services() if f"`{name}`" not in text)
    assert not missing, f"docs/deploy.md does not say what {missing} are"
