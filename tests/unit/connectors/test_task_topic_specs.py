from connectors.registry import topics
from connectors.settings import parse_settings

UTILITIES = [
    {"id": u, "endpoint": f"http://{u}.example/v1/tasks", "auth": {"type": "bearer", "token": f"t-{u}"}}
    for u in ("yantai-water", "jinan-heat")
]


def test_each_configured_utility_gets_a_task_topic_and_the_old_single_one_is_not_created() -> None:
    """Start-up creates one task topic per utility, partitioned like the revision topic that follows them."""
    settings = parse_settings(
        {
            "kafka": {"topic_prefix": "p.", "partitions": 6},
            "routing": {"service_areas": "a.yaml"},
            "utilities": UTILITIES,
        }
    )
    specs = {spec.name: spec for spec in topics(settings)}
    tasks = {name: spec.partitions for name, spec in specs.items() if ".tasks." in name}
    assert tasks == {"p.ubridge.tasks.yantai-water.v1": 6, "p.ubridge.tasks.jinan-heat.v1": 6}
    assert specs["p.ubridge.delivery-revisions.v1"].partitions == 6
    assert "p.ubridge.tasks.v1" not in specs
