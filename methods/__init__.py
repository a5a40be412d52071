"""Statistical methods, independent of any source or the warehouse: each is a pure function of frames.

- `hydrology`: flow statistics of daily series (period means, coverage, Mann-Kendall trends);
- `mortality`: crude and directly age-standardized death rates with intervals, rate ratios;
- `currency`: nominal and real amounts, conversion between CLP, UF and USD.

Families in `pipelines/` call them on data `sources/` has parsed; their tests are in tests/methods/.
"""
