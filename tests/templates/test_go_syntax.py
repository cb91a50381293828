"""The Go-template engine follows text/template: syntax, Go truth, functions and errors."""

from __future__ import annotations

import pytest
from llmd.errors import InvalidRequest, TemplateError
from llmd.templates import check_go_template
from llmd.templates.gotemplate import compile_go
from llmd.templates.govalues import GoStruct


def run(text: str, **data: object) -> str:
    # Response is always set when llmd renders; Ollama appends {{ .Response }} to such templates.
    return compile_go(text).execute({"Response": "", **data})


@pytest.mark.parametrize(
    ("text", "data", "expected"),
    [
        ("a  {{- .X -}}  b", {"X": 1}, "a1b"),
        ("{{/* a comment */}}x{{- /* trimmed */ -}} y", {}, "xy"),
        (
            "{{ if .X }}yes{{ else if .Y }}why{{ else }}no{{ end }}",
            {"X": "", "Y": [1]},
            "why",
        ),
        ('{{ if or 0 "" .Missing }}t{{ else }}f{{ end }}', {}, "f"),
        ('{{ and 1 "x" }} {{ or 0 "y" }} {{ not 0 }}', {}, "x y true"),
        (
            "{{ range $i, $x := .L }}{{ $i }}={{ $x }},{{ end }}",
            {"L": ["a", "b"]},
            "0=a,1=b,",
        ),
        ("{{ range .L }}{{ . }}{{ else }}empty{{ end }}", {"L": []}, "empty"),
        (
            "{{ range $k, $v := .M }}{{ $k }}{{ $v }}{{ end }}",
            {"M": {"b": 2, "a": 1}},
            "a1b2",
        ),
        (
            "{{ range .L }}{{ if eq . 2 }}{{ continue }}{{ end }}{{ if eq . 4 }}{{ break }}{{ end }}{{ . }}{{ end }}",
            {"L": [1, 2, 3, 4, 5]},
            "13",
        ),
        ("{{ with .X }}[{{ . }}]{{ else }}none{{ end }}", {"X": "v"}, "[v]"),
        ("{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}", {}, "2"),
        ("{{ range .L }}{{ $.Top }}{{ end }}", {"L": [1, 2], "Top": "T"}, "TT"),
        (
            '{{ eq .R "a" "b" "c" }} {{ ne 1 2 }} {{ lt 1 2 }} {{ ge "b" "a" }}',
            {"R": "c"},
            "true true true true",
        ),
        (
            '{{ len .L }} {{ index .L 1 }} {{ slice .L 1 }} {{ slice "hello" 1 3 }}',
            {"L": [1, 2, 3]},
            "3 2 [2 3] el",
        ),
        (
            '{{ .X | printf "%s!" }} {{ printf "%d-%v-%q" 3 true "s" }}',
            {"X": "hi"},
            'hi! 3-true-"s"',
        ),
        ('{{ print 1 2 "a" }} {{ 1.5 }} {{ -2 }} {{ true }}', {}, "1 2a 1.5 -2 true"),
        (
            "{{ json .M }}",
            {"M": {"z": "<&>", "a": [1, 2.0]}},
            '{"z":"\\u003c\\u0026\\u003e","a":[1,2]}',
        ),
        ("{{ .Missing }}", {}, "<no value>"),
        (
            "{{ (len .L) }}{{ (index .L 0).Name }}",
            {"L": [GoStruct("T", {"Name": "n"}, {})]},
            "1n",
        ),
        ('{{ `raw\\n` }}{{ "q\\t" }}', {}, "raw\\nq\t"),
    ],
)
def test_go_template_constructs_evaluate_as_in_go(
    text: str, data: dict[str, object], expected: str
) -> None:
    assert run(text, **data) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{{ define "x" }}{{ end }}', "unsupported construct {{define}}"),
        ('{{ template "x" }}', "unsupported construct {{template}}"),
        ("{{ html .X }}", 'unsupported construct: function "html"'),
        ("hello {{ .Prompt ", "unclosed action"),
        ("{{ if .X }}open", "has no {{end}}"),
        ("{{ frobnicate .X }}", 'function "frobnicate" not defined'),
        ("{{ $nope }}", 'undefined variable "$nope"'),
        ("{{ end }}", "unexpected {{end}}"),
        ("{{/* never closed }}", "unclosed comment"),
        ("{{ (len .X }}", "unclosed left paren"),
        ("{{ .X | .Y }}", "non executable command in pipeline stage 2"),
        ("{{ break }}", "{{break}} outside {{range}}"),
        ("{{ }}", "missing value for command"),
        ('{{ "abc }}', "unterminated quoted string"),
    ],
)
def test_a_template_that_cannot_run_is_refused_at_check_time(
    text: str, problem: str
) -> None:
    with pytest.raises(TemplateError) as caught:
        check_go_template(text)
    assert isinstance(caught.value, InvalidRequest)
    assert str(caught.value).startswith("template error: line ")
    assert problem in str(caught.value)


@pytest.mark.parametrize(
    ("text", "data", "problem"),
    [
        (
            "{{ .M.Nope }}",
            {"M": GoStruct("*api.Message", {"Role": "user"}, {})},
            "can't evaluate field Nope in type *api.Message",
        ),
        ("{{ .Missing.Field }}", {}, "nil pointer evaluating interface {}.Field"),
        ('{{ eq 1 "1" }}', {}, "incompatible types for comparison"),
        ("{{ index .L 5 }}", {"L": [1]}, "index out of range: 5"),
        ("{{ len 3 }}", {}, "len of type int"),
        ("{{ not 1 2 }}", {}, "wrong number of args for not: want 1 got 2"),
    ],
)
def test_execution_errors_are_template_errors_not_tracebacks(
    text: str, data: dict[str, object], problem: str
) -> None:
    with pytest.raises(TemplateError, match="template error: line 1: ") as caught:
        run(text, **data)
    assert problem in str(caught.value)


def test_the_error_line_is_where_the_problem_is() -> None:
    with pytest.raises(TemplateError, match="line 3: unclosed action"):
        check_go_template("one\ntwo\n{{ .X\n")


def test_a_valid_template_passes_the_check() -> None:
    assert (
        check_go_template("{{ range $i, $m := .Messages }}{{ $m.Role }}{{ end }}")
        is None
    )


def test_absurd_nesting_is_a_template_error_not_a_crash() -> None:
    with pytest.raises(TemplateError, match="nested too deeply"):
        check_go_template("{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}")


@pytest.mark.parametrize("spec", ["%2000000000d", "%2000000000s", "%.2000000000f", "%-2000000000v"])
def test_printf_refuses_widths_and_precisions_beyond_go_s_bound(spec: str) -> None:
    # a request's `template` could otherwise make the daemon build a 2 GB string
    out = run("{{ printf $.F 5 }}", F=spec)
    assert out in ("%!(BADWIDTH)", "%!(BADPREC)")


def test_printf_still_pads_to_a_sane_width() -> None:
    assert run('{{ printf "%8d|%-4s|%.2f" 42 "ab" 3.14159 }}') == "      42|ab  |3.14"
