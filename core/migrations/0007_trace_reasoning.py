# The `reasoning` trace event type (a model's thinking and its provider's opaque reasoning state).

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0006_api_tokens_hashed"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="traceevent",
            name="trace_event_type_valid",
        ),
        migrations.AlterField(
            model_name="traceevent",
            name="type",
            field=models.CharField(
                choices=[
                    ("run_started", "Run started"),
                    ("text_delta", "Text delta"),
                    ("reasoning", "Reasoning"),
                    ("tool_call", "Tool call"),
                    ("tool_result", "Tool result"),
                    ("usage", "Usage"),
                    ("finish", "Finish"),
                    ("error", "Error"),
                    ("run_finished", "Run finished"),
                ],
                max_length=16,
            ),
        ),
        migrations.AddConstraint(
            model_name="traceevent",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    (
                        "type__in",
                        [
                            "run_started",
                            "text_delta",
                            "reasoning",
                            "tool_call",
                            "tool_result",
                            "usage",
                            "finish",
                            "error",
                            "run_finished",
                        ],
                    )
                ),
                name="trace_event_type_valid",
            ),
        ),
    ]
