# Every test of this suite fails when it leaves device buffers behind (ttalloc_pytest.py, beside).
pytest_plugins = ["ttalloc_pytest"]
