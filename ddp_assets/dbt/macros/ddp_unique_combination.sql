{# A composite key (several ODCS properties with primaryKey: true) is unique as a combination.
   Written here rather than taken from dbt_utils: dbt packages come from the internet at `dbt deps`
   time, which many of our users' machines do not reach. #}
{% test ddp_unique_combination(model, columns) %}
select {{ columns | join(', ') }}, count(*) as occurrences
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
