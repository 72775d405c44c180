"""Bundled hardware profiles (YAML). A package only so the files install with accelsim."""
