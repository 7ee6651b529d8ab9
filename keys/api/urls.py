"""LiteLLM's key, team, user, customer and budget management paths (the gateway includes them at its root)."""

from django.urls import path

from keys.api import customer_views, tag_views, views

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
    path("customer/new", customer_views.CustomerNewView.as_view(), name="customer-new"),
    path("customer/info", customer_views.CustomerInfoView.as_view(), name="customer-info"),
    path("customer/update", customer_views.CustomerUpdateView.as_view(), name="customer-update"),
    path("customer/delete", customer_views.CustomerDeleteView.as_view(), name="customer-delete"),
    path("customer/list", customer_views.CustomerListView.as_view(), name="customer-list"),
    path("customer/block", customer_views.CustomerBlockView.as_view(), name="customer-block"),
    path("customer/unblock", customer_views.CustomerUnblockView.as_view(), name="customer-unblock"),
    path("budget/new", customer_views.BudgetNewView.as_view(), name="budget-new"),
    path("budget/info", customer_views.BudgetInfoView.as_view(), name="budget-info"),
    path("budget/update", customer_views.BudgetUpdateView.as_view(), name="budget-update"),
    path("budget/delete", customer_views.BudgetDeleteView.as_view(), name="budget-delete"),
    path("budget/list", customer_views.BudgetListView.as_view(), name="budget-list"),
    path("tag/new", tag_views.TagNewView.as_view(), name="tag-new"),
    path("tag/info", tag_views.TagInfoView.as_view(), name="tag-info"),
    path("tag/update", tag_views.TagUpdateView.as_view(), name="tag-update"),
    path("tag/delete", tag_views.TagDeleteView.as_view(), name="tag-delete"),
    path("tag/list", tag_views.TagListView.as_view(), name="tag-list"),
]
