"""``{{ amount|money }}`` in admin templates: pricing.admin_base.money_html ($1,234.56, the exact digits on hover)."""

from django import template

from pricing.admin_base import money_html

register = template.Library()
register.filter("money", money_html)
