from marketplace.reviews.models import Review


def review_public_for_user(*, user):
    """Published reviews about a user: the only ones anybody but their author may read."""
    return Review.objects.filter(subject=user, published_at__isnull=False).order_by("-published_at")
