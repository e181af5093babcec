"""Codify's HCL editing on real files: only the literal changes, comments survive."""

from __future__ import annotations

from pathlib import Path

import pytest

from driftsafe.drift import hcl
from driftsafe.drift.codify import apply_edits, parse_target, plan_codify, restore
from driftsafe.errors import ConfigError

MODULE = """# the app module
variable "max_connections" { type = number }
variable "port" { type = number }
variable "opts" { type = map(string) }

resource "lab_config_file" "app" {
  path = "/tmp/app.conf" # where it goes
  values = {
    max_connections = tostring(var.max_connections) # tuned by ops
    port            = tostring(var.port)
    greeting        = "hello, ${var.port}"
    level           = "info"
    timeout = var.opts["timeout"]
  }
  mode = "0644"
}
"""

ROOT = """module "app" {
  source = "../../modules/app"

  max_connections = var.max_connections
  port            = 8080 // fixed here
  opts            = var.opts
}
"""

TFVARS = """# staging values
max_connections = 100   # raised in 2024
opts = {
  timeout = "30"
}
"""


@pytest.fixture
def stack(tmp_path: Path) -> Path:
    (tmp_path / "modules" / "app").mkdir(parents=True)
    (tmp_path / "modules" / "app" / "main.tf").write_text(MODULE)
    root = tmp_path / "envs" / "staging"
    root.mkdir(parents=True)
    (root / "main.tf").write_text(ROOT)
    (root / "variables.tf").write_text('variable "max_connections" {}\nvariable "opts" {}\n')
    (root / "terraform.tfvars").write_text(TFVARS)
    return root


def test_parse_target() -> None:
    t = parse_target("module.app.lab_config_file.app.values.max_connections")
    assert (t.modules, t.type, t.name) == (("app",), "lab_config_file", "app")
    assert t.address == "module.app.lab_config_file.app"
    assert t.path == "values.max_connections"
    t = parse_target('module.a[0].module.b["x"].lab_x.y[2]')
    assert t.modules == ("a", "b") and t.address == 'module.a[0].module.b["x"].lab_x.y[2]'
    assert t.path == ""
    with pytest.raises(ConfigError):
        parse_target("data.lab_x.y.attr")


def test_tfvars_value_through_module_and_tostring(stack: Path) -> None:
    target = parse_target("module.app.lab_config_file.app.values.max_connections")
    edit = plan_codify(stack, target, "200")
    assert edit.file == stack / "terraform.tfvars"
    assert (edit.old, edit.new) == ("100", "200")  # stays a number, as written
    originals, diff = apply_edits([edit], base=stack)
    text = (stack / "terraform.tfvars").read_text()
    assert text == TFVARS.replace("= 100 ", "= 200 ")
    assert "# raised in 2024" in text and "# staging values" in text
    assert "-max_connections = 100   # raised in 2024" in diff
    assert "+max_connections = 200   # raised in 2024" in diff
    restore(originals)
    assert (stack / "terraform.tfvars").read_text() == TFVARS


def test_literal_in_module_call(stack: Path) -> None:
    edit = plan_codify(stack, parse_target("module.app.lab_config_file.app.values.port"), "9090")
    assert edit.file == stack / "main.tf"
    apply_edits([edit])
    assert "port            = 9090 // fixed here" in (stack / "main.tf").read_text()


def test_literal_in_resource_and_nested_map_in_tfvars(stack: Path) -> None:
    module = stack.parent.parent / "modules" / "app" / "main.tf"
    e1 = plan_codify(stack, parse_target("module.app.lab_config_file.app.mode"), "0600")
    e2 = plan_codify(stack, parse_target("module.app.lab_config_file.app.values.level"), "debug")
    apply_edits([e1, e2])
    text = module.read_text()
    assert 'mode = "0600"' in text and 'level           = "debug"' in text
    assert text.replace('"0600"', '"0644"').replace('"debug"', '"info"') == MODULE


def test_unsupported_expressions_are_refused(stack: Path) -> None:
    with pytest.raises(ConfigError, match="greeting.*hello"):
        plan_codify(stack, parse_target("module.app.lab_config_file.app.values.greeting"), "x")
    with pytest.raises(ConfigError, match="timeout"):
        plan_codify(stack, parse_target("module.app.lab_config_file.app.values.timeout"), "60")
    with pytest.raises(ConfigError, match="not set"):
        plan_codify(stack, parse_target("module.app.lab_config_file.app.content"), "x")


def test_variable_only_defaulted_is_added_to_tfvars(tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text(
        'variable "size" {\n  default = 3\n}\nresource "lab_x" "y" {\n  size = var.size\n}\n'
    )
    edit = plan_codify(tmp_path, parse_target("lab_x.y.size"), 5)
    apply_edits([edit])
    assert (tmp_path / "terraform.tfvars").read_text() == "size = 5\n"


def test_scanner_skips_strings_heredocs_and_comments() -> None:
    text = (
        'a = "x { y"  # } not a brace\n'
        "b = <<EOT\n}\nEOT\n"
        "/* c = 1 */\n"
        'blk "l" { inner = [1,\n 2] }\n'
    )
    items = hcl.parse_body(text)
    assert [getattr(i, "name", getattr(i, "type", None)) for i in items] == ["a", "b", "blk"]
    a = hcl.find_attr(items, "a")
    assert a is not None and text[a.expr_start : a.expr_end] == '"x { y"'
    blk = hcl.find_block(items, "blk", "l")
    assert blk is not None and hcl.find_attr(blk.items, "inner") is not None
    assert hcl.render_literal("a${b}", '"z"') == '"a$${b}"'
    assert hcl.render_literal("true", "false") == "true"
    assert hcl.render_literal("7", '"x"') == '"7"'
