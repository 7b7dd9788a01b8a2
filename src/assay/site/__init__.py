"""The static detection site and ATT&CK Navigator layers."""
