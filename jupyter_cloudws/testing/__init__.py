"""Test helpers shipped for others to test with: a scripted fake Anthropic Messages API."""
