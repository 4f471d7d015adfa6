"""
The transport layer: everything between a hook's API call and the bytes on the wire.

It owns the HTTP clients the async hooks share (:mod:`~airflow_provider_kling.transport.clients`),
the one retry policy of both hooks (:mod:`~airflow_provider_kling.transport.retries`),
the classification of what went wrong (an HTTP error answer, an unreadable body, or no
answer at all, and whether the request may have reached GMI:
:mod:`~airflow_provider_kling.transport.failures`), and the streamed, atomic writing of a
downloaded video to a local path or an object store
(:mod:`~airflow_provider_kling.transport.writers`), which URLs a download may fetch
(:mod:`~airflow_provider_kling.transport.fetch`, on the one reading of a URL in
:mod:`~airflow_provider_kling.transport.urls`, connecting only where it checked:
:mod:`~airflow_provider_kling.transport.pinning`) and how long and large one answer may be
(:mod:`~airflow_provider_kling.transport.bounds`). The hooks decide which call to make; this
layer decides how it is sent, repeated and read. Its modules import ``requests``, ``httpx``
and ``tenacity`` only where a call is made, or are themselves imported only by the hooks,
so parsing a DAG loads none of them.
"""
