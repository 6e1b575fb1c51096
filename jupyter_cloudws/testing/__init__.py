"""Test helpers shipped for others to test with: a scripted fake Anthropic Messages API
(``fake_anthropic``), a scripted sandbox backend that stages spawn/attach/loss/stop step by step
(``fake_backend``), and a real ``jupyter server`` process (``server``)."""
