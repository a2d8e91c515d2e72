"""Moved to :mod:`nexus.templating`; these names stay importable from here.

Template rendering serves planning, the engine and the gateway alike, so it
lives in a package below all three (the gateway must not import planning).
"""

from nexus.templating import (
    MAX_TEMPLATE_CHARS,
    TemplateLimitError,
    check_syntax,
    inspect_template,
    is_template,
    referenced_tasks,
    render_deep,
    render_text,
    render_value,
    strings_in,
)

__all__ = [
    "MAX_TEMPLATE_CHARS",
    "TemplateLimitError",
    "check_syntax",
    "inspect_template",
    "is_template",
    "referenced_tasks",
    "render_deep",
    "render_text",
    "render_value",
    "strings_in",
]
