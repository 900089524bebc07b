"""The read side of mar: projections rebuilt from the events alone.

- `course`: a pure fold of one patient's events into a medication course
  (orders over clinical time, rate segments, administrations, listed medications).
- `totals`: amounts per local day or hour, split exactly at the boundaries.
- `mme`: versioned opioid conversion tables.
- `runner`: the read-model database (sqlite-utils) kept up to date from the store.
- `queries`: what the read commands ask (regimen, totals).
"""
