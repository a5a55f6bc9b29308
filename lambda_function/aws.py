"""AWS clients for the function: botocore, without boto3.

``boto3.client(...)`` is botocore's ``Session.create_client`` behind a default session, but
importing boto3 also imports s3transfer and its transfer manager (measured here: ~0.45 s of a
~1.2 s handler import), which the function never uses: it calls ``get_object`` and
``put_records`` only. Credentials, region and ``AWS_ENDPOINT_URL`` are read from the
environment by botocore itself, exactly as boto3 does.
"""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def _session() -> Any:
    import botocore.session

    return botocore.session.get_session()


def client(service_name: str) -> Any:
    """A botocore client for ``service_name`` (one botocore session per process)."""
    return _session().create_client(service_name)
