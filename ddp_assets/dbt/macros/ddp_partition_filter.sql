{#- A partitioned product's run builds only its partitions (ddp_assets/partitions.py): ddp passes
    them in the DDP_PARTITION environment variable (JSON), and a model keeps the rows of those
    partitions with
        where {{ ddp_partition_filter('ordered_at') }}
    Time windows: `column >= start and column < end` (UTC timestamps, the run's whole range);
    static keys: `column in (keys)`. Outside a partitioned run it keeps every row.
    The variable is read only when dbt executes: parsing never records it, so a new partition
    does not cost a full parse (a dbt var would: dbt keys its partial parse on the vars). -#}
{% macro ddp_partition_filter(column) -%}
  {%- set raw = env_var('DDP_PARTITION', '') if execute else '' -%}
  {%- if not raw -%}
    (1 = 1)
  {%- else -%}
    {%- set partition = fromjson(raw) -%}
    {%- if partition.get('start') -%}
      ({{ column }} >= cast('{{ partition.start }}' as timestamp) and {{ column }} < cast('{{ partition.end }}' as timestamp))
    {%- else -%}
      ({{ column }} in ({%- for key in partition['keys'] -%}'{{ key }}'{%- if not loop.last %}, {% endif -%}{%- endfor -%}))
    {%- endif -%}
  {%- endif -%}
{%- endmacro %}
