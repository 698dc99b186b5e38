{#- Write-audit-publish: an output port's model is built in `<product>__staging` and published
    to `<product>.<model>` only after its contract audit passed (ddp_assets/contracts/wap.py).
    A model of another product reads the published relation; the port's own product and its
    dbt tests read staging (that is what is being audited). In an environment other than prod
    every schema has the environment's prefix (`<env>__<product>__staging` → `<env>__<product>`):
    a reader's own schema has it too, so the comparison is between the two physical schemas. -#}
{% macro ref() %}
  {%- set version = kwargs.get('version') or kwargs.get('v') -%}
  {%- if (varargs | length) == 1 -%}
    {%- set rel = builtins.ref(varargs[0], version=version) -%}
  {%- else -%}
    {%- set rel = builtins.ref(varargs[0], varargs[1], version=version) -%}
  {%- endif -%}
  {%- set suffix = '__staging' -%}
  {%- if rel is not none and rel.schema and rel.schema.endswith(suffix)
        and model is defined and model.resource_type == 'model' -%}
    {%- set owner = rel.schema[:(rel.schema | length) - (suffix | length)] -%}
    {%- set own = model.schema or '' -%}
    {%- if own.endswith(suffix) -%}
      {%- set own = own[:(own | length) - (suffix | length)] -%}
    {%- endif -%}
    {%- if owner != own -%}
      {%- do return(rel.incorporate(path={'schema': owner})) -%}
    {%- endif -%}
  {%- endif -%}
  {%- do return(rel) -%}
{% endmacro %}
