async def test_home_page_renders(client):
    response = await client.get("/")
    assert response.status == 200
    assert "Welcome to xnode.test" in await response.text()
