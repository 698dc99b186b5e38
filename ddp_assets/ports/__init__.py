"""Output ports: how consumers reach a data product, under the product's policies.

- :mod:`.policy` resolves what a consumer may read of a port (grants, masking, row filters)
  from the product spec and the ODCS contract, and compiles it to SQL (:mod:`.postgres` is
  the second compiler of the same policy, for a PostgreSQL warehouse);
- :mod:`.serving` builds the serving snapshot of every published port, which the ports read
  instead of the single-writer warehouse;
- :mod:`.sql_port`, :mod:`.rest` and :mod:`.files` are the three kinds of port;
  :mod:`.sql_guard` checks and bounds a consumer's SQL query before and while it runs;
- :mod:`.permissions` keeps the files holding data readable by their owner (or a group) only;
- :mod:`.tokens` and :mod:`.audit` keep consumers' API tokens and the access log (the
  products' control port) in a SQLite file beside the warehouse.
"""
