{#- A partitioned product's run builds only its partitions (ddp_assets/partitions.py): ddp passes
    them as the `ddp_partition` var, and a model keeps the rows of those partitions with
        where {{ ddp_partition_filter('ordered_at') }}
    Time windows: `column >= start and column < end` (UTC timestamps, the run's whole range);
    static keys: `column in (keys)`. Outside a partitioned run it keeps every row. -#}
{% macro ddp_partition_filter(column) -%}
  {%- set partition = var('ddp_partition', none) -%}
  {%- if partition is none -%}
    (1 = 1)
  {%- elif partition.get('start') -%}
    ({{ column }} >= cast('{{ partition.start }}' as timestamp) and {{ column }} < cast('{{ partition.end }}' as timestamp))
  {%- else -%}
    ({{ column }} in ({%- for key in partition['keys'] -%}'{{ key }}'{%- if not loop.last %}, {% endif -%}{%- endfor -%}))
  {%- endif -%}
{%- endmacro %}
