"""Medication alerts: rules over one patient's course, each documented in docs/alerts.md.

- `engine.patient_alerts(events, ...)`: the pure computation (one patient, stored events in);
- `config`: the rule settings (shipped defaults, a site file with MAR_ALERT_RULES);
- `store`: the `alerts` read model in the projections database, `mar alerts`, `mar ack`;
- one module per family of rules: omission, admission, mme, combinations, taper, dosing.
"""
