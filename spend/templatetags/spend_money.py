from django import template

from pricing.money import usd as format_usd

register = template.Library()


@register.filter
def usd(amount):
    return format_usd(amount)
