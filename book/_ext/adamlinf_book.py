"""Sphinx hooks for this book.

* The docstrings write maths as ``$...$`` (as the book's Markdown does); on the API page it becomes
  Sphinx's ``:math:`` role (and ``$$...$$`` a math block), so MathJax typesets it.
* Docstrings that are not valid reStructuredText after napoleon's Google-style conversion are shown
  verbatim (a literal block) on the API page instead of failing a ``--warningiserror`` build.
* A ``{prf:ref}`` to an unnumbered theorem box (the book's boxes carry the paper's numbers in their
  titles) reads "Theorem 3.2", the start of the box's title, instead of sphinx-proof's bare "Theorem".
* A Markdown link to a labelled section of another page, ``[notes](../reconstruction.md#thm-3-2-notes)``,
  resolves: MyST looks such fragments up among heading slugs only, so each section's labels are
  added to them.
* A ``[text](#section)`` link in Markdown glued into a page (the result box under each title links
  down to the page's "Paper vs ours") resolves to that section of the page: MyST parses glued
  Markdown on its own and does not see the page's headings.
* The index of statements (sphinx-proof's ``prf-prf`` page) lists each box by the paper's name
  ("Theorem 3.2 (SignGD …)", on the page "Theorem 3.2: SignGD under ℓ∞-smoothness"), grouped by
  kind and in the paper's numbering, instead of by bare labels ("alg-4", "def-3-12 (book/executed/…)").
"""

from __future__ import annotations

import io
import re

from docutils.core import publish_doctree
from docutils.utils import SystemMessage


def _valid_rst(text: str) -> bool:
    stream = io.StringIO()
    try:
        doctree = publish_doctree(
            text,
            settings_overrides={"report_level": 2, "halt_level": 5, "warning_stream": stream},
        )
    except (SystemMessage, Exception):  # noqa: BLE001 - any parse failure means: show it verbatim
        return False
    messages = [m for m in doctree.traverse() if m.tagname == "system_message" and m["level"] >= 2]
    return not messages and not stream.getvalue()


_SPHINX_ONLY = (
    ":data:",
    ":func:",
    ":class:",
    ":meth:",
    ":mod:",
    ":attr:",
    ":math:",
    ":obj:",
    ":exc:",
    ":cite:p:",
)
_SPHINX_BLOCKS = (  # (docutils knows ".. math::" and napoleon's field lists, ":param x:", itself)
    ".. note::",
    ".. warning::",
    ".. seealso::",
    ".. code-block::",
    ".. attribute::",
    ".. rubric::",
    ".. admonition::",
)


_DISPLAY = re.compile(r"\$\$(.+?)\$\$", re.S)
_INLINE = re.compile(r"(?<![\\$])\$([^$\n]+?)(?<!\\)\$")


def _inline_math(m: re.Match) -> str:
    text, start, end = m.string, m.start(), m.end()
    before = "\\ " if start > 0 and (text[start - 1].isalnum() or text[start - 1] in "_)") else ""
    after = "\\ " if end < len(text) and (text[end].isalnum() or text[end] in "_(") else ""
    return f"{before}:math:`{m.group(1)}`{after}"


def _tex_to_rst(text: str) -> str:
    """``$...$``, ``$$...$$`` and MyST's ``{cite}`` (the docstrings' maths and citations) in Sphinx's RST."""
    text = text.replace("{cite}`", ":cite:p:`")
    text = _DISPLAY.sub(lambda m: "\n\n.. math::\n\n   " + " ".join(m.group(1).split()) + "\n\n", text)
    return _INLINE.sub(_inline_math, text)


def _docstring_math(app, what, name, obj, options, lines):  # noqa: ARG001 - Sphinx's signature
    text = "\n".join(lines)
    if "$" in text or "{cite}" in text:
        lines[:] = _tex_to_rst(text).split("\n")


def _verbatim_if_broken(app, what, name, obj, options, lines):  # noqa: ARG001 - Sphinx's signature
    if not lines:
        return
    text = "\n".join(lines)
    probe = text
    # docutils alone does not know Sphinx's roles and directives: neutralise them for the check.
    for role in _SPHINX_ONLY:
        probe = probe.replace(role, "")
    for block in _SPHINX_BLOCKS:
        probe = probe.replace(block, ".. container::")
    if _valid_rst(probe):
        return
    original = [line for line in (obj.__doc__ or text).splitlines()]
    lines[:] = ["::", ""] + ["    " + line for line in original] + [""]


_SHORT = re.compile(r"^(.*?)(?:\s+\(|\s+—|\s+-\s|:|$)")


def _collect_proof_titles(app, doctree):
    titles = app.env.__dict__.setdefault("adamlinf_proof_titles", {})
    for node in doctree.traverse():
        if type(node).__name__ == "unenumerable_node" and node.get("label"):
            titles[node["label"]] = (app.env.docname, node.get("title", ""))


def _label_slugs(app, doctree):
    from docutils import nodes

    slugs = app.env.metadata[app.env.docname].setdefault("myst_slugs", {})
    for section in doctree.traverse(nodes.section):
        title = section.next_node(nodes.title)
        text = title.astext() if title else ""
        for label in section["ids"]:
            slugs.setdefault(label, (1, label, text))


def _local_section_links(app, doctree):
    """Resolve ``#section`` links that MyST left pending (glued Markdown) to the page's own sections."""
    from docutils import nodes
    from sphinx import addnodes

    ids = {i for section in doctree.traverse(nodes.section) for i in section["ids"]}
    for ref in list(doctree.traverse(addnodes.pending_xref)):
        if ref.get("reftype") != "myst" or ref.get("refdomain") or ref.get("reftarget") not in ids:
            continue
        new = nodes.reference("", "", internal=True, refid=ref["reftarget"])
        for child in ref.children:
            new += child.children if isinstance(child, nodes.inline) else child
        ref.replace_self(new)


def _purge_proof_titles(app, env, docname):
    titles = env.__dict__.get("adamlinf_proof_titles", {})
    for label in [k for k, (doc, _) in titles.items() if doc == docname]:
        del titles[label]


def _merge_proof_titles(app, env, docnames, other):
    env.__dict__.setdefault("adamlinf_proof_titles", {}).update(
        other.__dict__.get("adamlinf_proof_titles", {})
    )


def _name_unnumbered_refs(app, doctree, docname):
    from docutils import nodes

    titles = app.env.__dict__.get("adamlinf_proof_titles", {})
    for ref in doctree.traverse(nodes.reference):
        target = (ref.get("refuri") or "").rpartition("#")[2] or ref.get("refid", "")
        if target not in titles or len(ref.children) != 1 or not isinstance(ref.children[0], nodes.Text):
            continue
        text = ref.astext().strip()
        if text and " " not in text:  # sphinx-proof's "Theorem " for a box without a number
            short = _SHORT.match(titles[target][1]).group(1).strip() or text
            ref.children[0].parent.replace(ref.children[0], nodes.Text(short))


_KINDS = {
    "theorem": "Theorems",
    "lemma": "Lemmas",
    "corollary": "Corollaries",
    "proposition": "Propositions",
    "definition": "Definitions",
    "assumption": "Assumptions",
    "algorithm": "Algorithms",
    "axiom": "Assumptions",
    "conjecture": "Conjectures",
    "example": "Examples",
    "remark": "Remarks",
    "property": "Properties",
    "observation": "Observations",
    "criterion": "Criteria",
}


def _natural(text: str) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


def _proof_index(self, docnames=None):
    """sphinx-proof's index, with each entry named by its box's title and the page's title."""
    env = self.domain.env
    titles = env.__dict__.get("adamlinf_proof_titles", {})
    content: dict[str, list] = {}
    for anchor, values in getattr(env, "proof_list", {}).items():
        docname = values["docname"]
        if docnames and docname not in docnames:
            continue
        title = titles.get(anchor, ("", ""))[1] or anchor
        page = env.titles[docname].astext() if docname in env.titles else ""
        kind = _KINDS.get(values.get("realtype", ""), "Other statements")
        # name, subtype, docname, anchor, extra (shown in brackets), qualifier, description
        content.setdefault(kind, []).append((title, 0, docname, anchor, page, "", ""))
    order = list(dict.fromkeys(_KINDS.values()))
    groups = sorted(content.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order))
    return [(kind, sorted(entries, key=lambda e: _natural(e[0]))) for kind, entries in groups], False


def setup(app):
    """Register the hooks (after napoleon's, which converts Google-style sections first)."""
    app.connect("autodoc-process-docstring", _docstring_math, priority=800)
    app.connect("autodoc-process-docstring", _verbatim_if_broken, priority=900)
    app.connect("doctree-read", _collect_proof_titles)
    app.connect("doctree-read", _label_slugs)
    app.connect("doctree-read", _local_section_links)
    app.connect("env-purge-doc", _purge_proof_titles)
    app.connect("env-merge-info", _merge_proof_titles)
    app.connect("doctree-resolved", _name_unnumbered_refs)
    from sphinx_proof.domain import ProofIndex

    ProofIndex.generate = _proof_index  # the paper's names in the index of statements
    return {"parallel_read_safe": True, "parallel_write_safe": True}
