"""Sandboxed Jinja2 templates: the one place workflow text is rendered.

Planning checks a workflow's templates (syntax, which tasks they read), the
engine renders task fields with them, and the scripted model provider renders
its replies: all three use this package, which sits below them and imports
nothing of Nexus but :mod:`nexus.domain`. The bounded sandbox is in
:mod:`nexus.templating._sandbox`.
"""

from nexus.templating._templates import (
    BUILTIN_NAMES,
    MAX_TEMPLATE_CHARS,
    TemplateLimitError,
    check_syntax,
    inspect_reads,
    inspect_template,
    is_single_expression,
    is_template,
    referenced_tasks,
    render_deep,
    render_text,
    render_value,
    strings_in,
)

__all__ = [
    "BUILTIN_NAMES",
    "MAX_TEMPLATE_CHARS",
    "TemplateLimitError",
    "check_syntax",
    "inspect_reads",
    "inspect_template",
    "is_single_expression",
    "is_template",
    "referenced_tasks",
    "render_deep",
    "render_text",
    "render_value",
    "strings_in",
]
