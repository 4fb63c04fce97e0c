"""The README's settings table is the one `service/settings.py` generates: every setting, its
default and its description."""

import subprocess
import sys
from pathlib import Path

from harness.process import PROJECT_ROOT
from service.settings import TABLE_END, TABLE_START, ServiceSettings, markdown_table, with_table


def test_the_readme_lists_every_setting_as_settings_py_describes_it() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert with_table(readme) == readme, (
        "README's settings table differs from service/settings.py: "
        "run `python -m service.settings --readme README.md`"
    )


def test_the_table_has_a_row_per_setting_with_its_description() -> None:
    table = markdown_table()
    for name, field in ServiceSettings.model_fields.items():
        row = next(line for line in table.splitlines() if f"`CREDIT_RISK_{name.upper()}`" in line)
        assert field.description and field.description.replace("|", "\\|") in row, name


def test_a_changed_description_makes_the_readme_differ() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    edited = readme.replace("Engine threads per worker.", "Threads.", 1)
    assert edited != readme and with_table(edited) != edited


def test_the_command_writes_the_table_between_the_markers(tmp_path: Path) -> None:
    document = tmp_path / "doc with space.md"
    document.write_text(f"# title\n{TABLE_START}\nold\n{TABLE_END}\nafter\n")
    subprocess.run(
        [sys.executable, "-m", "service.settings", "--readme", str(document)],
        cwd=PROJECT_ROOT,
        check=True,
        timeout=60,
    )
    assert document.read_text() == f"# title\n{TABLE_START}\n{markdown_table()}{TABLE_END}\nafter\n"
