{#- Each product's models live in a schema named after the product (set by ddp). Outside prod
    (DDP_ENV), the generated properties already name the environment's schema,
    `<env>__<product>` and `<env>__<product>__staging` (ddp_assets/dbt/properties.py
    in_environment: dbt's partial parse tracks an env_var there, not in this macro), so the
    name is used as given. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}{{ target.schema }}{%- else -%}{{ custom_schema_name | trim }}{%- endif -%}
{%- endmacro %}
