"""LiteLLM's /customer/* and /budget/* (master key): customers (end users) and the budgets they share.

Each view parses with its input serializer, calls one service, and renders with its output serializer. A customer's
`spend` is the one its next call is checked against (keys.limits.live_spend), as a key's is on /key/info.
"""

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from keys import customer_services as services
from keys.api import customer_serializers as s
from keys.api.views import ACTOR, INVALID, NOT_FOUND, ManagementView, _all_found, _found, _input
from keys.customers import customer_limits
from keys.limits import live_spend
from keys.models import Budget, Customer


def _with_spend(customer: Customer) -> Customer:
    customer.live_spend = live_spend(customer_limits(customer))
    return customer


def _shown(customer: Customer) -> dict:
    return s.CustomerOutput(_with_spend(customer)).data


# -- customers ----------------------------------------------------------------------------------------------------------


class CustomerNewView(ManagementView):
    @extend_schema(request=s.CustomerNewInput, responses={200: s.CustomerOutput, 400: INVALID, 404: NOT_FOUND})
    def post(self, request):
        return Response(_shown(services.create_customer(_input(s.CustomerNewInput, request.data), actor=ACTOR)))


class CustomerInfoView(ManagementView):
    @extend_schema(parameters=[s.CustomerRefQuery], responses={200: s.CustomerOutput, 400: INVALID, 404: NOT_FOUND})
    def get(self, request):
        end_user_id = _input(s.CustomerRefQuery, request.query_params.dict())["end_user_id"]
        return Response(_shown(_found(services.find_customer, end_user_id)))


class CustomerUpdateView(ManagementView):
    @extend_schema(request=s.CustomerUpdateInput, responses={200: s.CustomerOutput, 400: INVALID, 404: NOT_FOUND})
    def post(self, request):
        data = dict(_input(s.CustomerUpdateInput, request.data))
        customer = _found(lambda end_user_id: services.find_customer(end_user_id, "user_id"), data.pop("user_id"))
        return Response(_shown(services.update_customer(customer, data, actor=ACTOR)))


class CustomerDeleteView(ManagementView):
    @extend_schema(request=s.CustomerIdsInput, responses={200: s.CustomerDeleteOutput, 400: INVALID, 404: NOT_FOUND})
    def post(self, request):
        ids = _input(s.CustomerIdsInput, request.data)["user_ids"]
        deleted = services.delete_customers(_all_found(Customer, "end_user_id", ids, "user_ids"), actor=ACTOR)
        message = f"Successfully deleted customers with ids: {deleted}"
        return Response(s.CustomerDeleteOutput({"deleted_customers": len(deleted), "message": message}).data)


class CustomerListView(ManagementView):
    @extend_schema(responses={200: s.CustomerOutput(many=True)})
    def get(self, request):
        customers = Customer.objects.select_related("budget")
        return Response([_shown(customer) for customer in customers])


class CustomerBlockView(ManagementView):
    """Calls naming a blocked customer are refused (403 customer_blocked); customers not seen yet are made."""

    blocked = True

    @extend_schema(request=s.CustomerIdsInput, responses={200: s.CustomerBlockOutput, 400: INVALID})
    def post(self, request):
        ids = _input(s.CustomerIdsInput, request.data)["user_ids"]
        customers = services.set_blocked(ids, self.blocked, actor=ACTOR)
        return Response({"blocked_users": [_shown(customer) for customer in customers]})


class CustomerUnblockView(CustomerBlockView):
    blocked = False


# -- budgets ------------------------------------------------------------------------------------------------------------


class BudgetNewView(ManagementView):
    @extend_schema(request=s.BudgetNewInput, responses={200: s.BudgetOutput, 400: INVALID})
    def post(self, request):
        return Response(
            s.BudgetOutput(services.create_budget(_input(s.BudgetNewInput, request.data), actor=ACTOR)).data
        )


class BudgetUpdateView(ManagementView):
    @extend_schema(request=s.BudgetUpdateInput, responses={200: s.BudgetOutput, 400: INVALID, 404: NOT_FOUND})
    def post(self, request):
        data = dict(_input(s.BudgetUpdateInput, request.data))
        budget = _found(services.find_budget, data.pop("budget_id"))
        return Response(s.BudgetOutput(services.update_budget(budget, data, actor=ACTOR)).data)


class BudgetInfoView(ManagementView):
    @extend_schema(request=s.BudgetInfoInput, responses={200: s.BudgetOutput(many=True), 400: INVALID, 404: NOT_FOUND})
    def post(self, request):
        ids = _input(s.BudgetInfoInput, request.data)["budgets"]
        return Response(s.BudgetOutput(_all_found(Budget, "budget_id", ids, "budgets"), many=True).data)


class BudgetDeleteView(ManagementView):
    @extend_schema(request=s.BudgetDeleteInput, responses={200: s.BudgetOutput, 400: INVALID, 404: NOT_FOUND})
    def post(self, request):
        budget = _found(
            lambda budget_id: services.find_budget(budget_id, "id"), _input(s.BudgetDeleteInput, request.data)["id"]
        )
        shown = s.BudgetOutput(budget).data
        services.delete_budgets([budget], actor=ACTOR)
        return Response(shown)


class BudgetListView(ManagementView):
    @extend_schema(responses={200: s.BudgetOutput(many=True)})
    def get(self, request):
        return Response(s.BudgetOutput(Budget.objects.all(), many=True).data)
