"""Arrow batches, IPC results and Parquet datasets (client side: pyarrow).

* ``arrow_schema``: Arrow type descriptions as pyarrow types and back;
* ``arrow_batches``: a query streamed into Arrow record batches;
* ``ipc_result``: batches as an Arrow IPC stream under a size cap, and back;
* ``parquet_dataset``: writing and reading a versioned Parquet dataset.
"""
