"""The optional parameters a 码上放心 bill upload takes, by the platform's names.

Shared vocabulary: a bill carries them (``bill open --param``, kept by the
bill desk) and the 码上放心 sink sends them (``alihealth.extra`` for every
bill, a bill's own over it), so the one list and its check live at the bottom
where both read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scanner_agent.kernel._errors import ConfigError, unknown_key

__all__ = ["PLATFORM_PARAMS", "platform_params"]

PLATFORM_PARAMS: frozenset[str] = frozenset(
    {
        "dest_user_id",
        "warehouse_id",
        "drug_id",
        "return_reason_code",
        "return_reason_des",
        "cancel_reason_code",
        "cancel_reason_des",
        "executer_name",
        "executer_code",
        "superviser_name",
        "superviser_code",
        "from_address",
        "to_address",
        "from_bill_code",
        "order_code",
        "from_person",
        "to_person",
        "dis_ref_ent_id",
        "dis_ent_id",
        "xt_is_check",
        "xt_check_code",
        "xt_check_code_desc",
        "drug_list_json",
        "ass_ref_ent_id",
        "ass_ent_id",
        "qu_receivable",
    }
)
"""Optional business parameters of the 码上放心 bill upload (``alihealth.extra``, a bill's
``params``), by the platform's names.  The same set for ``kyt`` and ``lsyd``: the generated
TOP SDK github.com/bububa/opentaobao, ``model/drugtrace/AlibabaAlihealthDrugKytUploadinoutbillAPIRequest.go``
and ``...DrugtraceTopLsydUploadinoutbillAPIRequest.go`` (their ``r.Set("<name>", ...)`` calls).
``agent_ref_user_id`` is left out: the platform says not to fill it any more."""


def platform_params(values: Mapping[str, Any], key: str) -> dict[str, str]:
    """Optional 码上放心 upload parameters, checked: known names, string or number values.

    Numbers are sent as their decimal text.

    >>> platform_params({"warehouse_id": "W1", "qu_receivable": 3}, "alihealth.extra")
    {'warehouse_id': 'W1', 'qu_receivable': '3'}

    Raises:
        ConfigError: naming ``key.<name>`` for an unknown name or a value of another type.
    """
    if not isinstance(values, Mapping):
        raise ConfigError(f"{key}: expected a table of parameter = value, got {values!r}")
    out: dict[str, str] = {}
    for name, value in values.items():
        if name not in PLATFORM_PARAMS:
            raise unknown_key(
                f"{key}.{name}",
                PLATFORM_PARAMS,
                "not an optional parameter of the 码上放心 bill upload",
            )
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ConfigError(f"{key}.{name}: expected a string or a number, got {value!r}")
        out[str(name)] = value if isinstance(value, str) else str(value)
    return out
