import redis

from service.runtime.embedded_redis import EmbeddedRedis


def test_append_only_data_survives_a_restart(tmp_path):
    server = EmbeddedRedis(tmp_path, appendonly=True).start()
    try:
        assert server.port != 6379
        client = redis.Redis.from_url(server.url)
        client.set("kept", "yes")
        client.close()
        server.stop()
        server.start()
        client = redis.Redis.from_url(server.url)
        assert client.get("kept") == b"yes"
        client.close()
    finally:
        server.stop()


def test_test_database_is_private_and_empty(redis, redis_server):
    assert redis_server.port != 6379
    assert redis.dbsize() == 0
    redis.set("x", 1)
    assert redis.get("x") == b"1"
