"""Proof: scenario synthesis, the detection test runner, agreement between forms, JUnit/JSON reports."""
