"""Tests of the static detection site."""
