"""django-q2's admin in the unfold theme: tasks, failures, schedules and the ORM queue.

django-q2 registers plain `admin.ModelAdmin` classes; they are swapped for classes that keep every
django-q2 behaviour (columns, read-only fields, the resubmit action, the ORM-queue database) and
render through unfold's `ModelAdmin`. django_q comes before this app in INSTALLED_APPS, so its
admin module is loaded first; it is imported here as well so the order never matters.
"""

from django.contrib import admin
from django_q import admin as q_admin
from django_q.models import Failure, OrmQ, Schedule, Success
from unfold.admin import ModelAdmin


class SuccessAdmin(q_admin.TaskAdmin, ModelAdmin):
    pass


class FailureAdmin(q_admin.FailAdmin, ModelAdmin):
    pass


class ScheduleAdmin(q_admin.ScheduleAdmin, ModelAdmin):
    pass


class QueueAdmin(q_admin.QueueAdmin, ModelAdmin):
    pass


for model, model_admin in (
    (Success, SuccessAdmin),
    (Failure, FailureAdmin),
    (Schedule, ScheduleAdmin),
    (OrmQ, QueueAdmin),
):
    # OrmQ is registered by django-q2 only with the ORM broker; keep that rule.
    if admin.site.is_registered(model):
        admin.site.unregister(model)
        admin.site.register(model, model_admin)
