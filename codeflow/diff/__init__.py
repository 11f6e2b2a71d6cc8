"""AST-aware diff of Python code: which characters (and so which tokens) a bug fix changed.

    >>> d = diff_code("if x < n:\\n    return x\\n", "if x <= n:\\n    return x\\n")
    >>> d.kind, d.before_spans, d.after_spans
    ('semantic', [(0, 9)], [(0, 10)])

Imports no torch and no transformers: text in, spans out.
"""

from codeflow.diff.classify import KINDS
from codeflow.diff.code_diff import GRANULARITIES, CodeDiff, diff_code
from codeflow.diff.fence import extract_code
from codeflow.diff.tokens import spans_to_token_mask

__all__ = ["GRANULARITIES", "KINDS", "CodeDiff", "diff_code", "extract_code", "spans_to_token_mask"]
