"""What the tests share: plain helpers, never fixtures and never tests.

A test module imports shared code from here (or from its own directory's helper
modules), never from another test module or a ``conftest.py``
(``tests/architecture/test_test_modules.py`` checks it): a test file is a list of
behaviours, and reaching into one to borrow a constant couples two unrelated checks.
"""
