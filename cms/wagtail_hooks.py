"""The CMS keeps no people screens of its own: users and groups are managed in the operations admin,
where every change is audited (marketplace/accounts/access.py). Their menu entries are hidden here and
their addresses (/cms/users/, /cms/groups/) lead to the admin's lists (site/config/urls.py)."""

from wagtail import hooks

PEOPLE_MENU_ITEMS = {"users", "groups"}


@hooks.register("construct_settings_menu")
def hide_people_screens(request, menu_items):
    menu_items[:] = [item for item in menu_items if item.name not in PEOPLE_MENU_ITEMS]
