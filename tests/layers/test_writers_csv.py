"""defuse_formulas: text columns of pandas' str dtype and of object dtype alike."""

from __future__ import annotations

import numpy as np
import pandas as pd

from layers.writers import defuse_formulas


def test_defuses_str_and_object_columns_alike() -> None:
    values = ["=1+1", "+a", "-b", "@c", "\tt", "\rr", "ok", None, "x=1"]
    df = pd.DataFrame({"s": pd.Series(values, dtype="str"),
                       "o": pd.Series([*values[:-1], 7], dtype=object),
                       "n": np.arange(9.0) - 4})
    out = defuse_formulas(df)
    want = ["'=1+1", "'+a", "'-b", "'@c", "'\tt", "'\rr", "ok", None, "x=1"]
    assert [None if pd.isna(v) else v for v in out["s"]] == want
    assert out["o"].tolist()[:8] == want[:8] and out["o"].iat[8] == 7  # numbers untouched
    assert out["n"].tolist() == (np.arange(9.0) - 4).tolist()
    assert df["s"].iat[0] == "=1+1"  # the input is left as it was
