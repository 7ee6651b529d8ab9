"""LiteLLM's key, team and user management paths (the gateway includes them at its root)."""

from django.urls import path

from keys.api import views

urlpatterns = [
    path("key/generate", views.KeyGenerateView.as_view(), name="key-generate"),
    path("key/info", views.KeyInfoView.as_view(), name="key-info"),
    path("key/update", views.KeyUpdateView.as_view(), name="key-update"),
    path("key/delete", views.KeyDeleteView.as_view(), name="key-delete"),
    path("key/list", views.KeyListView.as_view(), name="key-list"),
    path("key/regenerate", views.KeyRegenerateView.as_view(), name="key-regenerate"),
    path("key/block", views.KeyBlockView.as_view(), name="key-block"),
    path("key/unblock", views.KeyUnblockView.as_view(), name="key-unblock"),
    path("team/new", views.TeamNewView.as_view(), name="team-new"),
    path("team/info", views.TeamInfoView.as_view(), name="team-info"),
    path("team/update", views.TeamUpdateView.as_view(), name="team-update"),
    path("team/delete", views.TeamDeleteView.as_view(), name="team-delete"),
    path("team/list", views.TeamListView.as_view(), name="team-list"),
    path("user/new", views.UserNewView.as_view(), name="user-new"),
    path("user/info", views.UserInfoView.as_view(), name="user-info"),
    path("user/update", views.UserUpdateView.as_view(), name="user-update"),
    path("user/delete", views.UserDeleteView.as_view(), name="user-delete"),
    path("user/list", views.UserListView.as_view(), name="user-list"),
]
