from django import template

from pricing.calculator import format_money
from pricing.money import usd as format_usd

register = template.Library()


@register.filter
def usd(amount):
    return format_usd(amount)


@register.filter
def exact_usd(amount):
    """Every digit of an amount, in plain notation: for the title a rounded amount shows on hover."""
    return format_money(amount) if amount is not None else ""
