"""Imported by `botwarden worker --handlers tests.workers.worker_plugin` in end-to-end tests."""

from botwarden.workers.registry import handlers
from tests.workers.jobs_for_tests import install

install(handlers)
